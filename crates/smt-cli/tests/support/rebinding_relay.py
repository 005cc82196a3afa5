"""A UDP relay for one client that changes its source port every N datagrams.

Usage: rebinding_relay.py LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT EVERY

Forwards the client's datagrams to the target from a "back" socket and the
target's replies back to the client. After every EVERY datagrams from the client
it closes the back socket and opens a new one on a fresh port, as a NAT whose
mapping expired does: replies to the old port are lost. Prints "ready" once
listening and, on SIGTERM, the number of rebindings, then exits.
"""
import selectors
import signal
import socket
import sys

listen_ip, listen_port, target_ip, target_port, every = sys.argv[1:6]
target = (target_ip, int(target_port))
every = int(every)

front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind((listen_ip, int(listen_port)))


def new_back():
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    back.bind((listen_ip, 0))
    return back


back = new_back()
client = None
from_client = 0
rebinds = 0
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
selector = selectors.DefaultSelector()
selector.register(front, selectors.EVENT_READ)
selector.register(back, selectors.EVENT_READ)
print("ready", flush=True)
while running:
    for key, _ in selector.select(timeout=0.1):
        sock = key.fileobj
        try:
            data, source = sock.recvfrom(65536)
        except OSError:
            continue
        if sock is front:
            client = source
            from_client += 1
            if from_client % every == 0:
                selector.unregister(back)
                back.close()
                back = new_back()
                selector.register(back, selectors.EVENT_READ)
                rebinds += 1
            back.sendto(data, target)
        elif client is not None:
            front.sendto(data, client)
print(f"rebinds {rebinds}", flush=True)
