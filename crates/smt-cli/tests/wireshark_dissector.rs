//! The Wireshark dissector, tools/wireshark/smt.lua, run by tshark on a live capture of
//! `smt serve` and `smt call` over loopback and on captures crafted here from
//! docs/PROTOCOL.md's examples and from malformed packets.
//!
//! Needs tshark, and for the live capture tcpdump with permission to capture on `lo`
//! (root or CAP_NET_RAW). Without them the tests print SKIPPED and pass, unless
//! SMT_REQUIRE_PRIVILEGED_TESTS is set (CI sets it; the convention of testbed.rs), in
//! which case they fail.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smt_proto::wire::{
    mark_bundled, Body, Flags, HandshakeRepr, HeaderRepr, MessageId, PacketRepr, PacketType,
    RetryRepr,
};
use support::{
    keygen, read_all_in_background, run, signal, skip, smt, tool_runs, wait_bounded, ChildGuard,
    TempDir,
};

/// Hard bound on every child process; each normally takes well under a second.
const LIMIT: Duration = Duration::from_secs(30);

/// tshark's aggregator for several occurrences of a field in one frame: expert
/// messages contain commas, so use a byte no field value contains.
const AGGREGATOR: &str = "\u{1f}";

/// Expert severities at or above this are problems (Wireshark's PI_WARN).
const PI_WARN: u64 = 0x0060_0000;

/// Record overhead of docs/PROTOCOL.md section 5.1: header 5, content type 1, tag 16.
const RECORD_OVERHEAD: u64 = 22;

fn dissector() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/wireshark/smt.lua")
}

/// A running `smt serve` on 127.0.0.1 and a port of its choosing.
struct Server {
    child: ChildGuard,
    addr: String,
}

impl Server {
    fn start(cert: &Path, key: &Path) -> Server {
        let mut command = smt();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--transport", "udp", "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(command.spawn().expect("spawn smt serve"));
        let stderr = child.0.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[smt serve] {line}");
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(LIMIT).expect("smt serve did not print 'listening on ADDR'");
        Server { child, addr }
    }

    fn port(&self) -> u16 {
        let port = self.addr.rsplit(':').next().and_then(|p| p.parse().ok());
        port.unwrap_or_else(|| panic!("no port in {:?}", self.addr))
    }

    /// SIGTERM, then the one JSON line of counters it prints.
    fn stop(mut self) -> serde_json::Value {
        signal(&self.child.0, "-TERM");
        let stdout = read_all_in_background(self.child.0.stdout.take().expect("piped stdout"));
        let status = wait_bounded(&mut self.child.0, LIMIT).expect("smt serve did not exit");
        assert!(status.success(), "smt serve exited with {status:?}");
        let stdout = stdout.join().expect("stdout reader");
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
    }
}

/// `smt call` of `count` verified echo calls of `size` bytes (one session).
fn call(server: &Server, ca: &Path, (size, count): (u64, u32)) {
    let mut command = smt();
    command
        .args(["call", "--connect", &server.addr, "--server-name", "localhost", "--ca"])
        .arg(ca)
        .args(["--size", &size.to_string(), "--count", &count.to_string()]);
    let out = run(command, LIMIT);
    assert!(out.status.success(), "smt call --size {size}: {}{}", out.stdout, out.stderr);
}

/// tcpdump writing loopback UDP traffic of one port to a file.
struct Capture {
    child: ChildGuard,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump and waits until it is capturing; `None` (after printing why)
    /// if it may not capture here.
    fn start(file: &Path, port: u16) -> Option<Capture> {
        let mut command = Command::new("tcpdump");
        // -U: write each packet at once, so the file can be polled; -Z root: keep
        // writing to our directory instead of dropping to the tcpdump user (only
        // applies when run as root); -B: a 64 MiB buffer, so a loaded machine does not
        // make the kernel drop packets.
        command
            .args(["-i", "lo", "-U", "-Z", "root", "-B", "65536", "-w"])
            .arg(file)
            .args(["udp", "port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(command.spawn().expect("spawn tcpdump"));
        let stderr = child.0.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[tcpdump] {line}");
                // "tcpdump: listening on lo, link-type ...": the socket is open and
                // the filter attached, so every later packet is captured.
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + LIMIT;
        let mut said = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.contains("listening on") => {
                    return Some(Capture { child, file: file.to_owned() })
                }
                Ok(line) => said.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // tcpdump closed stderr without saying it listens: it is exiting.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if child.0.try_wait().expect("wait for tcpdump").is_some() {
                break;
            }
        }
        // Not capturing (no permission, no loopback device) or stuck: not a failure
        // of the dissector, so skip; the guard kills a tcpdump still running.
        let status = match wait_bounded(&mut child.0, Duration::from_secs(1)) {
            Some(status) => status.to_string(),
            None => "still running".to_owned(),
        };
        skip(&format!("tcpdump cannot capture on lo ({status}): {}", said.join(" / ")));
        None
    }

    /// Waits until the file holds `bytes` (the last packet sent): everything sent
    /// before it is then in the file too, since tcpdump writes packets in order.
    fn wait_for(&self, bytes: &[u8]) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let data = std::fs::read(&self.file).unwrap_or_default();
            if data.windows(bytes.len()).any(|w| w == bytes) {
                return;
            }
            assert!(Instant::now() < deadline, "tcpdump never wrote the last packet sent");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT (tcpdump's normal way to stop), then wait for it to exit.
    fn stop(mut self) {
        signal(&self.child.0, "-INT");
        let status = wait_bounded(&mut self.child.0, LIMIT).expect("tcpdump did not exit");
        assert!(status.success(), "tcpdump exited with {status:?}");
    }
}

/// Runs tshark with the dissector on `pcap`; `args` choose the output. tshark
/// prints warnings on stderr (for example "Running as user root"); only its exit
/// status is checked.
fn tshark(home: &Path, pcap: &Path, args: &[&str]) -> String {
    let mut command = Command::new("tshark");
    let script = format!("lua_script:{}", dissector().display());
    // A HOME of our own: no personal preferences, and no copy of the dissector
    // installed in ~/.local/lib/wireshark/plugins that would register "smt" twice.
    command.env("HOME", home).env_remove("XDG_CONFIG_HOME");
    command.arg("-n").arg("-r").arg(pcap).args(["-X", &script]).args(args);
    let out = run(command, LIMIT);
    assert!(out.status.success(), "tshark {args:?} failed ({}): {}", out.status, out.stderr);
    out.stdout
}

/// One frame of `tshark -T fields` output: field name to its occurrences, in order.
type Frame = BTreeMap<String, Vec<String>>;

fn fields(home: &Path, pcap: &Path, prefs: &[&str], names: &[&str]) -> Vec<Frame> {
    let aggregator = format!("aggregator={AGGREGATOR}");
    let mut args = vec!["-T", "fields", "-E", "occurrence=a", "-E", &aggregator];
    for pref in prefs {
        args.extend(["-o", pref]);
    }
    for name in names {
        args.extend(["-e", name]);
    }
    let out = tshark(home, pcap, &args);
    out.lines()
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            assert_eq!(columns.len(), names.len(), "unexpected tshark line {line:?}");
            names
                .iter()
                .zip(columns)
                .map(|(name, column)| {
                    let values = if column.is_empty() {
                        Vec::new()
                    } else {
                        column.split(AGGREGATOR).map(str::to_owned).collect()
                    };
                    (name.to_string(), values)
                })
                .collect()
        })
        .collect()
}

fn get<'a>(frame: &'a Frame, name: &str) -> &'a [String] {
    frame.get(name).map(Vec::as_slice).unwrap_or_default()
}

fn number(text: &str) -> u64 {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{text:?} is not a number: {e}"))
}

/// The expert messages of `frame` at warning severity or above.
fn problems(frame: &Frame) -> Vec<String> {
    let severities = get(frame, "_ws.expert.severity");
    let messages = get(frame, "_ws.expert.message");
    let mut found: Vec<String> = severities
        .iter()
        .zip(messages)
        .filter(|(severity, _)| number(severity) >= PI_WARN)
        .map(|(_, message)| message.clone())
        .collect();
    found.extend(get(frame, "_ws.lua.error").iter().map(|e| format!("Lua error {e}")));
    found.extend(get(frame, "_ws.malformed").iter().map(|m| format!("malformed {m}")));
    found
}

const TYPE_DATA: u64 = 0x10;
const TYPE_GRANT: u64 = 0x11;
const TYPE_ACK: u64 = 0x18;
const TYPE_HANDSHAKE: u64 = 0x20;

/// One SMT packet of a frame, rebuilt from the per-packet fields.
#[derive(Debug)]
struct Packet {
    frame: u64,
    packet_type: u64,
    session: String,
    from_initiator: bool,
    message_id: u64,
    data: Option<DataFields>,
    grant_offset: Option<u64>,
    acked: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
struct DataFields {
    message_length: u64,
    offset: u64,
    payload_length: u64,
    record_size: u64,
    records: u64,
    message_payload_length: u64,
}

const PACKET_FIELDS: [&str; 14] = [
    "frame.number",
    "smt.type",
    "smt.session_id",
    "smt.flags.from_initiator",
    "smt.message_id",
    "smt.data.message_length",
    "smt.data.offset",
    "smt.data.payload_length",
    "smt.data.record_size",
    "smt.data.records",
    "smt.data.message_payload_length",
    "smt.grant.offset",
    "smt.ack.count",
    "smt.ack.message_id",
];

/// Splits each frame into its SMT packets. A frame lists every field's occurrences
/// in packet order, and each packet type always has the same fields, so the n-th
/// DATA packet of a frame owns the n-th occurrence of every `smt.data.*` field.
fn packets(frames: &[Frame]) -> Vec<Packet> {
    let mut all = Vec::new();
    for frame in frames {
        let number_of = |name: &str| get(frame, name).iter().map(|v| number(v)).collect::<Vec<_>>();
        let frame_number = number_of("frame.number")[0];
        let types = number_of("smt.type");
        let sessions = get(frame, "smt.session_id");
        let initiator = get(frame, "smt.flags.from_initiator");
        let ids = number_of("smt.message_id");
        assert!(
            sessions.len() == types.len()
                && initiator.len() == types.len()
                && ids.len() == types.len(),
            "frame {frame_number}: header fields do not line up: {frame:?}"
        );
        let data: Vec<Vec<u64>> = PACKET_FIELDS[5..11].iter().map(|name| number_of(name)).collect();
        let grants = number_of("smt.grant.offset");
        let ack_counts = number_of("smt.ack.count");
        let acked = number_of("smt.ack.message_id");
        let (mut nth_data, mut nth_grant, mut nth_ack, mut nth_acked) = (0, 0, 0, 0);
        for (i, &packet_type) in types.iter().enumerate() {
            let mut packet = Packet {
                frame: frame_number,
                packet_type,
                session: sessions[i].clone(),
                from_initiator: initiator[i] == "1",
                message_id: ids[i],
                data: None,
                grant_offset: None,
                acked: Vec::new(),
            };
            match packet_type {
                TYPE_DATA => {
                    let column = |c: usize| {
                        *data[c].get(nth_data).unwrap_or_else(|| {
                            panic!("frame {frame_number}: DATA without {}", PACKET_FIELDS[5 + c])
                        })
                    };
                    packet.data = Some(DataFields {
                        message_length: column(0),
                        offset: column(1),
                        payload_length: column(2),
                        record_size: column(3),
                        records: column(4),
                        message_payload_length: column(5),
                    });
                    nth_data += 1;
                }
                TYPE_GRANT => {
                    packet.grant_offset = grants.get(nth_grant).copied();
                    nth_grant += 1;
                }
                TYPE_ACK => {
                    let count = usize::try_from(ack_counts[nth_ack]).expect("small count");
                    packet.acked = acked[nth_acked..nth_acked + count].to_vec();
                    nth_ack += 1;
                    nth_acked += count;
                }
                _ => {}
            }
            all.push(packet);
        }
    }
    all
}

/// Wire length of a message of `payload` bytes in records of `record_size` content
/// bytes (docs/PROTOCOL.md section 6.1): an 8-byte prologue, then 22 bytes per record.
fn wire_length(payload: u64, record_size: u64) -> u64 {
    let content = payload + 8;
    content + RECORD_OVERHEAD * content.div_ceil(record_size)
}

/// A message seen in DATA packets: (session, sent by the client, message ID).
type MessageKey = (String, bool, u64);

#[test]
fn dissector_decodes_a_live_loopback_capture_of_handshakes_calls_and_bad_datagrams() {
    if !tool_runs("tshark") || !tool_runs("tcpdump") {
        skip("the live capture test needs tshark and tcpdump");
        return;
    }
    let tmp = TempDir::new("live");
    let (cert, key) = keygen(tmp.path(), "localhost");
    let server = Server::start(&cert, &key);
    let port = server.port();
    let pcap = tmp.path().join("live.pcap");
    let Some(capture) = Capture::start(&pcap, port) else { return };

    // Datagrams no SMT receiver accepts, from a socket of our own so their frames
    // can be told apart: too short for a header, and an unknown type (Homa's
    // CUTOFFS). Sent before the calls, whose success then proves the server went
    // past them.
    let rogue = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on loopback");
    let rogue_port = rogue.local_addr().expect("bound socket has an address").port();
    let short = [0xAAu8; 10];
    let mut unknown_type = [0u8; 24];
    unknown_type[4] = 1; // version
    unknown_type[5] = 0x15; // CUTOFFS
    unknown_type[8..16].copy_from_slice(&0x5eed_0000_0000_0001u64.to_be_bytes());
    for datagram in [&short[..], &unknown_type[..]] {
        rogue.send_to(datagram, &server.addr).expect("send to the server on loopback");
    }

    // Known sizes: 64 B fits one record and one packet; 100 000 B is 7 records,
    // beyond the 40 000 unscheduled bytes, so it needs GRANTs and several DATA.
    let small = (64u64, 3u32);
    let large = (100_000u64, 2u32);
    call(&server, &cert, small);
    call(&server, &cert, large);

    // A last bad datagram, a GRANT one byte too long: once it is in the file, so is
    // everything before it.
    let mut long_grant = [0u8; 33];
    long_grant[4] = 1;
    long_grant[5] = 0x11;
    long_grant[8..16].copy_from_slice(&0x5eed_0000_0000_0002u64.to_be_bytes());
    rogue.send_to(&long_grant, &server.addr).expect("send to the server on loopback");
    capture.wait_for(&long_grant);
    let stats = server.stop();
    capture.stop();

    // The server's own parser refused the two bad datagrams sent before the calls
    // (and maybe the last one, if it read it before stopping), and nothing else.
    let malformed = stats["malformed"].as_u64().expect("malformed counter");
    assert!((2..=3).contains(&malformed), "server counters: {stats}");

    let port_pref = format!("smt.udp_port:{port}");
    let mut names = PACKET_FIELDS.to_vec();
    names.extend([
        "udp.srcport",
        "tls.handshake.type",
        "smt.record.content_type",
        "smt.record.legacy_version",
        "smt.record.length",
        "smt.record.header_fragment",
        "_ws.expert.severity",
        "_ws.expert.message",
        "_ws.lua.error",
        "_ws.malformed",
    ]);
    let frames = fields(tmp.path(), &pcap, &[&port_pref], &names);
    assert!(!frames.is_empty(), "empty capture");

    // Exactly the rogue datagrams carry expert info, each the one its fault calls for.
    let (rogue_frames, clean_frames): (Vec<&Frame>, Vec<&Frame>) =
        frames.iter().partition(|f| get(f, "udp.srcport") == [rogue_port.to_string()]);
    let expected = [
        "Packet has 10 bytes; the common header alone is 24",
        "Unknown packet type 0x15",
        "GRANT packets are exactly 32 bytes, this one has 33",
    ];
    assert_eq!(rogue_frames.len(), expected.len(), "rogue datagrams: {rogue_frames:?}");
    for (frame, expected) in rogue_frames.iter().zip(expected) {
        let found = problems(frame);
        assert!(found.iter().any(|m| m.contains(expected)), "expected {expected:?}, got {found:?}");
    }
    for frame in &clean_frames {
        assert!(problems(frame).is_empty(), "expert info on a clean frame: {frame:?}");
        assert!(!get(frame, "smt.type").is_empty(), "frame not dissected as SMT: {frame:?}");
    }

    let clean: Vec<Frame> = clean_frames.into_iter().cloned().collect();
    let packets = packets(&clean);

    // Handshakes: both directions of every session, and the TLS dissector saw each
    // session's ClientHello (type 1) and ServerHello (type 2) in the reassembled
    // stream, once each.
    let sessions: BTreeSet<&str> = packets.iter().map(|p| p.session.as_str()).collect();
    assert_eq!(sessions.len(), 2, "one session per smt call: {sessions:?}");
    for session in &sessions {
        for from_initiator in [true, false] {
            assert!(
                packets.iter().any(|p| p.session == *session
                    && p.packet_type == TYPE_HANDSHAKE
                    && p.from_initiator == from_initiator),
                "no HANDSHAKE from the {} of session {session}",
                if from_initiator { "client" } else { "server" }
            );
        }
    }
    let hello_types: Vec<&String> =
        clean.iter().flat_map(|f| get(f, "tls.handshake.type")).collect();
    let count = |t: &str| hello_types.iter().filter(|h| h.as_str() == t).count();
    assert_eq!(count("1"), 2, "ClientHellos decoded by the TLS dissector: {hello_types:?}");
    assert_eq!(count("2"), 2, "ServerHellos decoded by the TLS dissector: {hello_types:?}");

    // DATA: every message's packets agree on (Message Length, Record Size), cover its
    // wire image exactly, and the wire length is the payload plus the overhead of
    // section 6.1.
    let mut messages: BTreeMap<MessageKey, (DataFields, Vec<(u64, u64)>)> = BTreeMap::new();
    for packet in &packets {
        let Some(data) = packet.data else { continue };
        let key = (packet.session.clone(), packet.from_initiator, packet.message_id);
        let entry = messages.entry(key).or_insert((data, Vec::new()));
        assert_eq!(
            (entry.0.message_length, entry.0.record_size),
            (data.message_length, data.record_size),
            "frame {}: DATA of one message disagree",
            packet.frame
        );
        entry.1.push((data.offset, data.offset + data.payload_length));
    }
    let mut payloads_per_session: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for ((session, from_initiator, id), (data, mut ranges)) in messages.clone() {
        ranges.sort_unstable();
        let mut covered = 0;
        for (start, end) in ranges {
            assert!(start <= covered, "message {id} of {session}: gap before offset {start}");
            covered = covered.max(end);
        }
        assert_eq!(covered, data.message_length, "message {id} of {session}: bytes carried");
        let payload = data.message_payload_length;
        assert_eq!(data.message_length, wire_length(payload, data.record_size));
        assert_eq!(data.records, (payload + 8).div_ceil(data.record_size));
        // The echo server answers each request with the same bytes: a response of
        // the same ID and size in the same session.
        let twin = (session.clone(), !from_initiator, id);
        let answer = messages.get(&twin).unwrap_or_else(|| panic!("no pair for {twin:?}"));
        assert_eq!(answer.0.message_length, data.message_length, "{twin:?}");
        if from_initiator {
            payloads_per_session.entry(session).or_default().push(payload);
        }
    }
    let mut seen: Vec<Vec<u64>> = payloads_per_session.into_values().collect();
    seen.sort();
    let expect = |(size, count): (u64, u32)| vec![size; count as usize];
    let mut wanted = vec![expect(small), expect(large)];
    wanted.sort();
    assert_eq!(seen, wanted, "request payload sizes per session");

    // GRANTs: every 100 000-byte message was granted by its receiver.
    for ((session, from_initiator, id), (data, _)) in &messages {
        if data.message_payload_length != large.0 {
            continue;
        }
        assert!(
            packets.iter().any(|p| p.packet_type == TYPE_GRANT
                && p.session == *session
                && p.from_initiator != *from_initiator
                && p.message_id == *id
                && p.grant_offset.is_some_and(|o| o <= data.message_length)),
            "no GRANT for message {id} of {session}"
        );
    }

    // ACKs name responses the client received in that session.
    for packet in packets.iter().filter(|p| p.packet_type == TYPE_ACK) {
        for id in &packet.acked {
            assert!(
                messages.contains_key(&(packet.session.clone(), false, *id)),
                "frame {}: ACK of {id}, which no response carried",
                packet.frame
            );
        }
    }

    // TLS record headers inside DATA: outer type 23, version 0x0303, and every
    // record's header was found (whole, or cut in two across packets).
    let all = |name: &str| clean.iter().flat_map(|f| get(f, name)).cloned().collect::<Vec<_>>();
    let content_types = all("smt.record.content_type");
    assert!(content_types.iter().all(|t| t == "23"), "{content_types:?}");
    assert!(all("smt.record.legacy_version").iter().all(|v| v == "0x0303"));
    assert!(all("smt.record.length").iter().all(|l| number(l) <= 16_384 + 17));
    let records: u64 = messages.values().map(|(d, _)| d.records).sum();
    let headers = content_types.len() + all("smt.record.header_fragment").len();
    assert!(headers as u64 >= records, "{headers} record headers for {records} records");
}

/// Builds pcap files of raw IPv4 packets (LINKTYPE_RAW), no capture needed.
struct Pcap {
    bytes: Vec<u8>,
    frames: u32,
}

impl Pcap {
    fn new() -> Pcap {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic
        bytes.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes()); // time zone
        bytes.extend_from_slice(&0u32.to_le_bytes()); // accuracy
        bytes.extend_from_slice(&262_144u32.to_le_bytes()); // snapshot length
        bytes.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
        Pcap { bytes, frames: 0 }
    }

    /// Adds a frame of which only the first `captured` bytes were captured.
    fn frame_truncated(&mut self, packet: &[u8], captured: usize) -> u32 {
        self.frames += 1;
        for value in [self.frames, 0, captured as u32, packet.len() as u32] {
            self.bytes.extend_from_slice(&value.to_le_bytes());
        }
        self.bytes.extend_from_slice(&packet[..captured]);
        self.frames
    }

    fn frame(&mut self, packet: &[u8]) -> u32 {
        self.frame_truncated(packet, packet.len())
    }

    fn udp(&mut self, src_port: u16, dst_port: u16, payload: &[u8]) -> u32 {
        self.frame(&udp(src_port, dst_port, payload))
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, &self.bytes).expect("write a pcap file");
    }
}

fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("small packet");
    let mut header =
        vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
    header[2..4].copy_from_slice(&total.to_be_bytes());
    let sum = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    header[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    header.extend_from_slice(payload);
    header
}

/// A UDP datagram without checksum (0 means none over IPv4).
fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("small datagram");
    let mut datagram = Vec::new();
    for value in [src_port, dst_port, len, 0] {
        datagram.extend_from_slice(&value.to_be_bytes());
    }
    datagram.extend_from_slice(payload);
    ipv4(17, &datagram)
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ASCII digits");
            u8::from_str_radix(pair, 16).expect("hex digits")
        })
        .collect()
}

/// The complete DATA datagram of docs/PROTOCOL.md section 10.3.
const SECTION_10_3: &str = "9c40115101100200feedfacecafebeef000000000000000100000020000000000000\
    002040000000170303001bc21eaa3e2b8ad3011f1f0014d3a98938fd7da9f4de9be15d6a1a9b";

/// The GRANT + BUSY bundle of `bundle_fixture_splits_into_its_two_packets`
/// (crates/smt-proto/src/wire/packet.rs).
const BUNDLE_FIXTURE: &str = "11519c40011108 00feedfacecafebeef 0020000000000007 0000100005000000
    11519c4001140000 feedfacecafebeef 0000000000000009";

/// A common header from the client of session 0xfeedfacecafebeef, port 40000 to 4433.
fn header(packet_type: u8, flags: u8, message_id: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&40000u16.to_be_bytes());
    bytes.extend_from_slice(&4433u16.to_be_bytes());
    bytes.extend_from_slice(&[1, packet_type, flags, 0]);
    bytes.extend_from_slice(&0xfeed_face_cafe_beefu64.to_be_bytes());
    bytes.extend_from_slice(&message_id.to_be_bytes());
    bytes
}

/// A header of session 0xfeedfacecafebeef built with the crate's own types: from its
/// client (port 40000 to 4433, FROM_INITIATOR set) or from its server.
fn header_repr(packet_type: PacketType, from_client: bool) -> HeaderRepr {
    let (src_port, dst_port) = if from_client { (40000, 4433) } else { (4433, 40000) };
    let flags = if from_client { Flags::FROM_INITIATOR } else { Flags::empty() };
    HeaderRepr {
        src_port,
        dst_port,
        packet_type,
        flags,
        session_id: 0xfeed_face_cafe_beef,
        message_id: MessageId::ZERO,
    }
}

/// The bytes of `packet`, emitted by the crate's own code.
fn emit(packet: PacketRepr<'_>) -> Vec<u8> {
    let mut bytes = vec![0; packet.buffer_len()];
    let len = packet.emit(&mut bytes);
    assert_eq!(len, bytes.len());
    bytes
}

/// A RETRY of session 0xfeedfacecafebeef from its server, carrying `token`.
fn retry(token: &[u8]) -> Vec<u8> {
    emit(PacketRepr {
        header: header_repr(PacketType::Retry, false),
        body: Body::Retry(RetryRepr { token }),
    })
}

/// A HANDSHAKE of session 0xfeedfacecafebeef from its client, from Stream Offset 0,
/// echoing `token` after the TLS bytes `data` and padded to `total` bytes.
fn handshake_with_token(data: &[u8], token: &[u8], total: usize) -> Vec<u8> {
    let padding_len = total - 24 - 12 - data.len() - token.len();
    let body = HandshakeRepr { stream_offset: 0, acknowledged: 0, data, token, padding_len };
    emit(PacketRepr {
        header: header_repr(PacketType::Handshake, true),
        body: Body::Handshake(body),
    })
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn with(mut bytes: Vec<u8>, body: &[u8]) -> Vec<u8> {
    bytes.extend_from_slice(body);
    bytes
}

fn data_body(length: u32, offset: u32, unscheduled: u32, record_size: u16) -> Vec<u8> {
    let mut body = Vec::new();
    for value in [length, offset, unscheduled] {
        body.extend_from_slice(&value.to_be_bytes());
    }
    body.extend_from_slice(&record_size.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body
}

fn needs_tshark() -> bool {
    let ok = tool_runs("tshark");
    if !ok {
        skip("tshark is not installed");
    }
    ok
}

#[test]
fn dissector_decodes_the_specifications_examples_and_every_packet_type_field_by_field() {
    if !needs_tshark() {
        return;
    }
    let tmp = TempDir::new("examples");
    let mut pcap = Pcap::new();
    let data_udp = pcap.udp(40000, 4433, &hex(SECTION_10_3));
    let bundle = pcap.udp(4433, 40000, &hex(BUNDLE_FIXTURE));
    let data_ip = pcap.frame(&ipv4(253, &hex(SECTION_10_3)));
    let mut ack_body = vec![0, 3, 0, 0];
    for id in [1u64, 2, 0xa5a5_5a5a_c3c3] {
        ack_body.extend_from_slice(&id.to_be_bytes());
    }
    let ack = pcap.udp(40000, 4433, &with(header(0x18, 2, 0), &ack_body));
    let resend_body = [0, 0, 0, 100, 0, 0, 0, 200, 1, 0, 0, 0];
    let resend = pcap.udp(4433, 40000, &with(header(0x12, 0, 4), &resend_body));
    let mut handshake_body = vec![0, 0, 5, 0xdc, 0, 0, 0, 7, 0, 0, 0, 0];
    handshake_body.extend_from_slice(&[0; 1164]); // pure acknowledgement padded to 1200
    let handshake = pcap.udp(40000, 4433, &with(header(0x20, 2, 0), &handshake_body));
    let bodyless: Vec<(u32, &str)> =
        [(0x13, "0x13"), (0x14, "0x14"), (0x17, "0x17"), (0x21, "0x21"), (0x22, "0x22")]
            .into_iter()
            .map(|(t, name)| (pcap.udp(40000, 4433, &header(t, 2, 9)), name))
            .collect();
    // A GSO batch captured before segmentation: three DATA datagrams of one 2 500-byte
    // message (one record: header 17 03 03 09bf, then 2 495 bytes) in one UDP payload.
    let mut wire_image = vec![0u8; 2500];
    wire_image[..5].copy_from_slice(&[0x17, 3, 3, 0x09, 0xbf]);
    let mut batch = Vec::new();
    for offset in [0u32, 1000, 2000] {
        batch.extend(with(header(0x10, 2, 5), &data_body(2500, offset, 2500, 16384)));
        batch.extend_from_slice(&wire_image[offset as usize..(offset as usize + 1000).min(2500)]);
    }
    let gso = pcap.udp(40000, 4433, &batch);
    let file = tmp.path().join("examples.pcap");
    pcap.write(&file);

    // (frame, field, its occurrences in that frame).
    let mut expected: Vec<(u32, &str, Vec<&str>)> = Vec::new();
    let mut expect = |frame: u32, fields: &[(&'static str, &[&'static str])]| {
        expected.extend(fields.iter().map(|(name, values)| (frame, *name, values.to_vec())));
    };
    // Section 10.3, byte for byte, over UDP and over native IP.
    for frame in [data_udp, data_ip] {
        expect(
            frame,
            &[
                ("smt.src_port", &["40000"]),
                ("smt.dst_port", &["4433"]),
                ("smt.version", &["1"]),
                ("smt.type", &["0x10"]),
                ("smt.flags", &["0x02"]),
                ("smt.flags.from_initiator", &["1"]),
                ("smt.reserved", &["0x00"]),
                ("smt.session_id", &["0xfeedfacecafebeef"]),
                ("smt.bundle_length", &["0"]),
                ("smt.message_id", &["1"]),
                ("smt.packet_length", &["72"]),
                ("smt.data.message_length", &["32"]),
                ("smt.data.offset", &["0"]),
                ("smt.data.unscheduled", &["32"]),
                ("smt.data.record_size", &["16384"]),
                ("smt.data.priority", &["0"]),
                ("smt.data.reserved", &["0x00"]),
                ("smt.data.payload_length", &["32"]),
                ("smt.data.records", &["1"]),
                ("smt.data.message_payload_length", &["2"]),
                ("smt.record.index", &["0"]),
                ("smt.record.sequence", &["0x0000000000010000"]),
                ("smt.record.content_type", &["23"]),
                ("smt.record.legacy_version", &["0x0303"]),
                ("smt.record.length", &["27"]),
                ("smt.record.ciphertext", &["c21eaa3e2b8ad3011f1f00"]),
                ("smt.record.tag", &["14d3a98938fd7da9f4de9be15d6a1a9b"]),
            ],
        );
    }
    expect(data_ip, &[("ip.proto", &["253"])]);
    // The bundle: a GRANT that says BUNDLED and its length, then a BUSY.
    expect(
        bundle,
        &[
            ("smt.type", &["0x11", "0x14"]),
            ("smt.flags.bundled", &["1", "0"]),
            ("smt.flags.from_initiator", &["0", "0"]),
            ("smt.bundle_length", &["32", "0"]),
            ("smt.message_id", &["7", "9"]),
            ("smt.packet_length", &["32", "24"]),
            ("smt.grant.offset", &["4096"]),
            ("smt.grant.priority", &["5"]),
            ("smt.grant.reserved", &["0x000000"]),
        ],
    );
    expect(
        ack,
        &[
            ("smt.type", &["0x18"]),
            ("smt.ack.count", &["3"]),
            ("smt.ack.message_id", &["1", "2", "182129604084675"]),
        ],
    );
    expect(
        resend,
        &[
            ("smt.type", &["0x12"]),
            ("smt.message_id", &["4"]),
            ("smt.resend.offset", &["100"]),
            ("smt.resend.length", &["200"]),
            ("smt.resend.priority", &["1"]),
            ("smt.resend.end", &["300"]),
        ],
    );
    expect(
        handshake,
        &[
            ("smt.type", &["0x20"]),
            ("smt.packet_length", &["1200"]),
            ("smt.handshake.stream_offset", &["1500"]),
            ("smt.handshake.acknowledged", &["7"]),
            ("smt.handshake.length", &["0"]),
            ("smt.handshake.padding_length", &["1164"]),
        ],
    );
    expect(
        gso,
        &[
            ("smt.type", &["0x10", "0x10", "0x10"]),
            ("smt.gso_segment_size", &["1040", "1040", "1040"]),
            ("smt.data.offset", &["0", "1000", "2000"]),
            ("smt.data.payload_length", &["1000", "1000", "500"]),
            ("smt.data.message_payload_length", &["2470", "2470", "2470"]),
            ("smt.record.length", &["2495"]),
        ],
    );
    for (frame, type_value) in bodyless {
        expect(frame, &[("smt.type", &[type_value]), ("smt.message_id", &["9"])]);
    }

    // No preference given: the default UDP port (4433) and IP protocol (253).
    check_valid_frames(tmp.path(), &file, pcap.frames as usize, &expected);

    // The UDP port is a preference: moved elsewhere, port 4433 is no longer SMT,
    // while native IP still is.
    let moved = fields(tmp.path(), &file, &["smt.udp_port:5000"], &["frame.number", "smt.type"]);
    assert!(get(&moved[data_udp as usize - 1], "smt.type").is_empty(), "{moved:?}");
    assert_eq!(get(&moved[data_ip as usize - 1], "smt.type"), ["0x10"]);
}

#[test]
fn dissector_decodes_retry_and_the_retry_token_a_handshake_echoes() {
    if !needs_tshark() {
        return;
    }
    let tmp = TempDir::new("retry");
    // A 20-byte token, the size of this implementation's (PROTOCOL.md 8.4).
    let token: Vec<u8> = (0xa0..0xb4).collect();
    let retry_bytes = retry(&token);
    // The client's ClientHello packet sent again after the RETRY: TLS bytes (here a
    // whole change_cipher_spec record, so that the TLS dissector sees exactly these
    // bytes as the stream), then the token, then padding up to 1200 bytes.
    let tls = [0x14, 0x03, 0x03, 0x00, 0x01, 0x01];
    let hello = handshake_with_token(&tls, &token, 1200);
    // A pure acknowledgement with a token and no padding at all.
    let ack_with_token = handshake_with_token(&[], &token[..3], 24 + 12 + 3);
    // The crate's own parser accepts all three, and reads back what was emitted.
    for bytes in [&retry_bytes, &hello, &ack_with_token] {
        let parsed = PacketRepr::parse(bytes).unwrap_or_else(|e| panic!("{e}: {bytes:02x?}"));
        assert_eq!(emit(parsed), *bytes);
    }
    match PacketRepr::parse(&hello).map(|p| p.body) {
        Ok(Body::Handshake(h)) => assert_eq!((h.token, h.padding_len), (&token[..], 1138)),
        other => panic!("not a HANDSHAKE: {other:?}"),
    }

    let mut pcap = Pcap::new();
    let retry_frame = pcap.udp(4433, 40000, &retry_bytes);
    let hello_frame = pcap.udp(40000, 4433, &hello);
    let ack_frame = pcap.udp(40000, 4433, &ack_with_token);
    let file = tmp.path().join("retry.pcap");
    pcap.write(&file);

    let token_hex = to_hex(&token);
    let tls_hex = to_hex(&tls);
    let short_token_hex = to_hex(&token[..3]);
    let expected: Vec<(u32, &str, Vec<&str>)> = vec![
        (retry_frame, "smt.type", vec!["0x23"]),
        (retry_frame, "_ws.col.Info", vec!["RETRY token=20"]),
        (retry_frame, "smt.src_port", vec!["4433"]),
        (retry_frame, "smt.flags.from_initiator", vec!["0"]),
        (retry_frame, "smt.message_id", vec!["0"]),
        (retry_frame, "smt.packet_length", vec!["44"]),
        (retry_frame, "smt.retry.token_length", vec!["20"]),
        (retry_frame, "smt.retry.token", vec![&token_hex]),
        (hello_frame, "smt.type", vec!["0x20"]),
        (hello_frame, "smt.packet_length", vec!["1200"]),
        (hello_frame, "smt.handshake.stream_offset", vec!["0"]),
        (hello_frame, "smt.handshake.length", vec!["6"]),
        (hello_frame, "smt.handshake.token_length", vec!["20"]),
        (hello_frame, "smt.handshake.tls_bytes", vec![&tls_hex]),
        (hello_frame, "smt.handshake.token", vec![&token_hex]),
        // 1200 - 24 (header) - 12 (body header) - 6 (TLS bytes) - 20 (token).
        (hello_frame, "smt.handshake.padding_length", vec!["1138"]),
        // The TLS stream holds the TLS bytes only: one record, change_cipher_spec.
        (hello_frame, "smt.handshake.records", vec!["1"]),
        (hello_frame, "tls.record.content_type", vec!["20"]),
        (ack_frame, "smt.handshake.length", vec!["0"]),
        (ack_frame, "smt.handshake.token_length", vec!["3"]),
        (ack_frame, "smt.handshake.token", vec![&short_token_hex]),
        (ack_frame, "smt.handshake.padding_length", vec![]),
        (ack_frame, "smt.handshake.tls_bytes", vec![]),
    ];
    // In particular, a non-zero Token Length is no "reserved field" any more.
    check_valid_frames(tmp.path(), &file, pcap.frames as usize, &expected);
}

/// Dissects `file` (which holds `frame_count` frames) with default preferences and
/// checks that no frame draws expert info and that each `(frame, field, values)`
/// of `expected` decodes to exactly those values.
fn check_valid_frames(
    home: &Path,
    file: &Path,
    frame_count: usize,
    expected: &[(u32, &str, Vec<&str>)],
) {
    let mut names: Vec<&str> = vec!["frame.number"];
    for (_, name, _) in expected {
        if !names.contains(name) {
            names.push(name);
        }
    }
    names.extend(["_ws.expert.severity", "_ws.expert.message", "_ws.lua.error", "_ws.malformed"]);
    let frames = fields(home, file, &[], &names);
    assert_eq!(frames.len(), frame_count);
    for frame in &frames {
        assert!(problems(frame).is_empty(), "expert info on a valid packet: {frame:?}");
    }
    for (frame, name, values) in expected {
        let found = get(&frames[*frame as usize - 1], name);
        assert_eq!(found, values.as_slice(), "frame {frame}, field {name}");
    }
}

#[test]
fn dissector_reports_each_kind_of_malformed_packet_and_never_raises_a_lua_error() {
    if !needs_tshark() {
        return;
    }
    let tmp = TempDir::new("malformed");
    let grant =
        |extra: &[u8]| with(header(0x11, 2, 3), &[&[0, 0, 1, 0, 0, 0, 0, 0][..], extra].concat());
    let data = |body: Vec<u8>, payload: &[u8]| with(with(header(0x10, 2, 3), &body), payload);
    let set_byte = |index: usize, value: u8| {
        let mut bytes = grant(&[]);
        bytes[index] = value;
        bytes
    };
    let ack = |count: u16, ids: &[u64]| {
        let mut body = count.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        for id in ids {
            body.extend_from_slice(&id.to_be_bytes());
        }
        with(header(0x18, 2, 0), &body)
    };
    let handshake_body = |length: u16, rest: usize| {
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(&[0, 0]);
        body.resize(body.len() + rest, 0);
        body
    };
    let mut bad_bundle = grant(&[]);
    bad_bundle[6] |= 0x08;
    bad_bundle[16..18].copy_from_slice(&1000u16.to_be_bytes());
    bad_bundle.extend_from_slice(&header(0x14, 2, 9));
    let mut bundled_handshake = grant(&[]);
    bundled_handshake[6] |= 0x08;
    bundled_handshake[16..18].copy_from_slice(&32u16.to_be_bytes());
    bundled_handshake.extend(with(header(0x20, 2, 0), &handshake_body(0, 0)));
    let mut wrong_record_type = data(data_body(32, 0, 32, 16384), &hex(&SECTION_10_3[80..]));
    wrong_record_type[40] = 22;
    // RETRY, built with the crate's own types: without a token, with one too long,
    // sharing its datagram, and sent as if by a client.
    let empty_retry = retry(&[]);
    let long_retry = retry(&[0xab; 256]);
    let mut bundled_retry = retry(&[1, 2, 3, 4]);
    mark_bundled(&mut bundled_retry);
    bundled_retry.extend(header(0x22, 0, 0));
    let mut client_retry = retry(&[1, 2, 3, 4]);
    client_retry[6] |= 0x02;
    // A HANDSHAKE whose Token Length runs past the end of the packet.
    let mut cut_token = handshake_with_token(b"abcdef", &[7; 20], 24 + 12 + 6 + 20);
    cut_token.truncate(24 + 12 + 6 + 10);
    // The crate's parser drops these three (the engine drops the other two RETRYs:
    // one is bundled, the other claims to come from a client).
    for bytes in [&empty_retry, &long_retry, &cut_token] {
        assert!(PacketRepr::parse(bytes).is_err(), "the parser accepts {bytes:02x?}");
    }

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("Packet has 10 bytes; the common header alone is 24", vec![0xAA; 10]),
        ("Version 2 (only 1 is defined)", set_byte(4, 2)),
        ("Unknown packet type 0x15", set_byte(5, 0x15)),
        ("Reserved flag bits set", set_byte(6, 0x12)),
        ("Reserved field is not zero", set_byte(7, 1)),
        ("the Message ID field exceeds 48 bits", set_byte(16, 1)),
        ("GRANT packets are exactly 32 bytes, this one has 33", grant(&[0])),
        ("GRANT packets are exactly 32 bytes, this one has 28", grant(&[])[..28].to_vec()),
        ("Reserved field is not zero", grant(&[])[..31].iter().chain(&[1]).copied().collect()),
        ("BUSY packets are exactly 24 bytes, this one has 25", with(header(0x14, 2, 1), &[0])),
        ("DATA needs at least 40 bytes", data(data_body(32, 0, 32, 16384)[..6].to_vec(), &[])),
        ("DATA payload is empty", data(data_body(32, 0, 32, 16384), &[])),
        (
            "Offset 8 + payload length 3 exceeds Message Length 10",
            data(data_body(10, 8, 0, 8), b"abc"),
        ),
        ("Unscheduled 40 exceeds Message Length 30", data(data_body(30, 0, 40, 8), b"x")),
        ("Record Size 7 is outside 8..16384", data(data_body(31, 0, 0, 7), b"x")),
        // Section 6.3's own example: with R = 8, W = 31 describes no message.
        (
            "Message Length 31 with Record Size 8 describes no valid message",
            data(data_body(31, 0, 0, 8), b"x"),
        ),
        ("Outer content type of an SMT record must be 23", wrong_record_type),
        (
            "RESEND Length must not be 0",
            with(header(0x12, 0, 4), &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        (
            "exceeds 2^32 - 1",
            with(header(0x12, 0, 4), &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]),
        ),
        ("Count 2 needs a packet of exactly 44 bytes, this one has 36", ack(2, &[1])),
        ("Count 33 exceeds 32", ack(33, &[1; 33])),
        ("upper 16 bits of an acknowledged ID must be 0", ack(1, &[1 << 48])),
        ("HANDSHAKE needs at least 36 bytes", with(header(0x20, 2, 0), &[0; 6])),
        ("Length 100 does not fit", with(header(0x20, 2, 0), &handshake_body(100, 10))),
        ("Bundle Length 1000 must be at least 24 and less than the 56 bytes left", bad_bundle),
        ("HANDSHAKE packet shares its datagram", bundled_handshake),
        (
            "Token Length 20 does not fit: the packet has only 10 bytes after the TLS bytes",
            cut_token,
        ),
        ("RETRY carries no token (at least 1 byte required)", empty_retry),
        ("RETRY token of 256 bytes exceeds 255", long_retry),
        ("RETRY packet shares its datagram", bundled_retry),
        ("FROM_INITIATOR must be clear on RETRY", client_retry),
    ];
    let mut pcap = Pcap::new();
    for (_, bytes) in &cases {
        pcap.udp(40000, 4433, bytes);
    }
    // A frame the capture cut short (snapshot length): reported, not an error.
    let truncated = pcap.frame_truncated(&udp(40000, 4433, &hex(SECTION_10_3)), 20 + 8 + 30);
    let file = tmp.path().join("malformed.pcap");
    pcap.write(&file);

    let names = ["frame.number", "_ws.expert.severity", "_ws.expert.message", "_ws.lua.error"];
    let frames = fields(tmp.path(), &file, &[], &names);
    assert_eq!(frames.len(), pcap.frames as usize);
    for ((expected, bytes), frame) in cases.iter().zip(&frames) {
        let found = problems(frame);
        assert!(
            found.iter().any(|m| m.contains(expected)),
            "{bytes:02x?}: expected {expected:?}, got {found:?}"
        );
        assert!(get(frame, "_ws.lua.error").is_empty(), "{found:?}");
    }
    let cut = problems(&frames[truncated as usize - 1]);
    assert!(cut.iter().any(|m| m.contains("of the datagram's 72 bytes were captured")), "{cut:?}");

    // Mutated and truncated valid packets, deterministic: the dissector reports
    // whatever is wrong but never fails in Lua.
    let seeds: Vec<Vec<u8>> = vec![
        hex(SECTION_10_3),
        hex(BUNDLE_FIXTURE),
        data(data_body(100_162, 16_390, 40_000, 16_384), &[0x17; 1000]),
        ack(3, &[1, 2, 3]),
        with(
            header(0x20, 2, 0),
            &[&handshake_body(10, 0)[..], &hex("16030100050100000100"), &[0; 50]].concat(),
        ),
        with(header(0x12, 0, 4), &[0, 0, 0, 100, 0, 0, 0, 200, 1, 0, 0, 0]),
        with(header(0x22, 2, 0), &[]),
        retry(&[0x5a; 20]),
        handshake_with_token(&hex("16030100050100000100"), &[0x5a; 20], 100),
    ];
    let mut fuzz = Pcap::new();
    let mut state = 0x5eed_u64;
    let mut next = move || {
        // SplitMix64: deterministic, so a failure reproduces.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as usize
    };
    for _ in 0..2000 {
        let mut packet = seeds[next() % seeds.len()].clone();
        for _ in 0..next() % 6 {
            let at = next() % packet.len();
            packet[at] = next() as u8;
        }
        if next() % 3 == 0 {
            packet.truncate(next() % (packet.len() + 1));
        }
        let frame = if next() % 5 == 0 { ipv4(253, &packet) } else { udp(40000, 4433, &packet) };
        let captured = if next() % 5 == 0 { next() % (frame.len() + 1) } else { frame.len() };
        fuzz.frame_truncated(&frame, captured);
    }
    let fuzz_file = tmp.path().join("fuzz.pcap");
    fuzz.write(&fuzz_file);
    // -V builds every tree item, so every code path of the dissector runs.
    let verbose = tshark(tmp.path(), &fuzz_file, &["-V"]);
    assert!(!verbose.contains("Lua Error"), "{}", lua_errors(&verbose));
    assert!(verbose.matches("SMT (Secure Message Transport)").count() > 1000);
}

fn lua_errors(text: &str) -> String {
    text.lines().filter(|l| l.contains("Lua Error")).take(5).collect::<Vec<_>>().join("\n")
}
