//! End-to-end tests of `smt inspect` on real captures: `smt serve` and `smt call`
//! (with SSLKEYLOGFILE) talk over loopback while tcpdump records them, then the
//! capture is decoded with the key log, as is, with one ciphertext byte flipped,
//! and with a key log that lacks the session.
//!
//! Capturing needs tcpdump and the right to capture (root or CAP_NET_RAW). Without
//! them the tests print SKIPPED and pass, unless SMT_REQUIRE_PRIVILEGED_TESTS is set
//! (CI sets it), in which case they fail.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{keygen, run, signal, skip, smt, wait_bounded, ChildGuard, Output, TempDir, QUICK};

/// The calls recorded: several records per message, several DATA packets each.
const CALLS: u64 = 3;
const SIZE: usize = 100_000;
/// Records of a SIZE-byte message in 16 KiB records: ceil((SIZE + 8) / 16384).
const RECORDS: u64 = 7;

/// Runs `command` (bounded by [`QUICK`]) and fails unless it succeeds.
fn run_ok(command: Command) -> Output {
    let out = run(command, QUICK);
    out.assert_success();
    out
}

/// A running `smt serve` on a loopback port; killed on drop.
struct Server {
    _child: ChildGuard,
    port: u16,
}

impl Server {
    /// Starts the server; `Err` with what it said if it exits without listening.
    fn start(cert: &Path, key: &Path, transport: &str) -> Result<Server, String> {
        let mut command = smt();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--transport", transport, "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard(command.spawn().expect("spawn smt serve"));
        let (tx, rx) = mpsc::channel();
        let stderr = child.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + QUICK;
        let mut said = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                let port = port.expect("a port in 'listening on ADDR'");
                return Ok(Server { _child: child, port });
            }
            said.push(line);
        }
        Err(said.join(" / "))
    }
}

/// A running tcpdump; stopped with SIGINT by [`Tcpdump::stop`], killed on drop.
struct Tcpdump {
    child: ChildGuard,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Tcpdump {
    /// Starts capturing what `filter` selects on loopback into `file`, and waits
    /// until it is capturing. `None` (after printing SKIPPED) if tcpdump is missing
    /// or may not capture here.
    fn start(file: &Path, filter: &str) -> Option<Tcpdump> {
        let mut command = Command::new("tcpdump");
        command
            // A 64 MiB capture buffer: a loaded machine must not make the kernel
            // drop packets before tcpdump reads them.
            .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-B", "65536", "-w"])
            .arg(file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(child) => ChildGuard(child),
            Err(e) => {
                skip(&format!("inspect tests need tcpdump ({e})"));
                return None;
            }
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.0.stderr.take().unwrap();
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                collected.lock().unwrap().push(line);
            }
        });
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            // It exited (no permission, no loopback device) or hangs: either way it
            // is not capturing.
            let _ = child.0.kill();
            let _ = child.0.wait();
            std::thread::sleep(Duration::from_millis(100));
            let said = lines.lock().unwrap().join(" / ");
            skip(&format!("tcpdump cannot capture on lo here ({said})"));
            return None;
        }
        Some(Tcpdump { child, stderr: lines })
    }

    /// Waits until `file` has stopped growing (tcpdump has written what it saw),
    /// then SIGINT and wait. Whether the capture is whole: false (with tcpdump's
    /// report) if the kernel dropped packets.
    fn stop(mut self, file: &Path) -> Result<(), String> {
        let size = || std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut last, mut stable_since) = (size(), Instant::now());
        while Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(300) {
            std::thread::sleep(Duration::from_millis(50));
            if size() != last {
                (last, stable_since) = (size(), Instant::now());
            }
        }
        signal(&self.child.0, "-INT");
        let status = wait_bounded(&mut self.child.0, Duration::from_secs(20))
            .expect("tcpdump did not exit after SIGINT");
        // The reader thread may still be collecting the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let said = self.stderr.lock().unwrap().join("\n");
        assert!(status.success(), "tcpdump exited with {status:?}:\n{said}");
        if said.lines().any(|line| line.trim() == "0 packets dropped by kernel") {
            Ok(())
        } else {
            Err(said)
        }
    }
}

/// A recorded capture of CALLS echo calls of SIZE bytes on one session.
struct Capture {
    dir: TempDir,
    pcap: PathBuf,
    keylog: PathBuf,
}

/// Records the capture over `transport` ("udp" or "ip"), or `None` (after printing
/// SKIPPED) if capturing, or native IP mode, is not possible here. Tries a few
/// times: on a busy machine the kernel may drop packets before tcpdump reads them,
/// and a capture with holes proves nothing.
fn record_capture(name: &str, transport: &str) -> Option<Capture> {
    let mut reports = Vec::new();
    for attempt in 0..3 {
        match record_capture_once(&format!("{name}-{attempt}"), transport)? {
            Ok(capture) => return Some(capture),
            Err(report) => reports.push(report),
        }
    }
    panic!("tcpdump lost packets in every attempt:\n{}", reports.join("\n---\n"));
}

fn record_capture_once(name: &str, transport: &str) -> Option<Result<Capture, String>> {
    let dir = TempDir::new(name);
    let (cert, key) = keygen(dir.path(), "localhost");
    let server = match Server::start(&cert, &key, transport) {
        Ok(server) => server,
        Err(said) if transport == "ip" => {
            skip(&format!("smt serve --transport ip cannot run here ({said})"));
            return None;
        }
        Err(said) => panic!("smt serve did not start: {said}"),
    };
    let pcap = dir.path().join("smt.pcap");
    let port = server.port.to_string();
    // In native IP mode the ports are the first two fields of the IP payload (the
    // SMT header): other native IP traffic of the host stays out of the capture.
    let filter = match transport {
        "ip" => format!("ip proto 253 and (ip[20:2] = {port} or ip[22:2] = {port})"),
        _ => format!("udp port {port}"),
    };
    let tcpdump = Tcpdump::start(&pcap, &filter)?;
    let keylog = dir.path().join("keys.log");
    let mut call = smt();
    call.args(["call", "--connect", &format!("127.0.0.1:{port}"), "--transport", transport])
        .args(["--server-name", "localhost", "--ca"])
        .arg(&cert)
        .args(["--size", &SIZE.to_string(), "--count", &CALLS.to_string()])
        .env("SSLKEYLOGFILE", &keylog);
    run_ok(call);
    let whole = tcpdump.stop(&pcap);
    drop(server);
    Some(whole.map(|()| Capture { dir, pcap, keylog }))
}

fn inspect_json(pcap: &Path, keylog: &Path) -> Value {
    let mut command = smt();
    command.arg("inspect").arg(pcap).arg("--keylog").arg(keylog).arg("--json");
    let out = run_ok(command);
    serde_json::from_str(&out.stdout).expect("smt inspect --json prints one JSON document")
}

fn inspect_text(pcap: &Path, keylog: &Path) -> String {
    let mut command = smt();
    command.arg("inspect").arg(pcap).arg("--keylog").arg(keylog);
    run_ok(command).stdout
}

/// Mirror of the request payload `smt call` sends for call number `call`
/// (`payload` in src/load.rs, private to the binary): SplitMix64 output.
fn call_payload(call: u64, size: usize) -> Vec<u8> {
    let mut state = call.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (size as u64).rotate_left(32);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        bytes.extend_from_slice(&next().to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn the_session(report: &Value) -> &Value {
    let sessions = report["sessions"].as_array().expect("sessions array");
    assert_eq!(sessions.len(), 1, "one session in the capture: {report:#}");
    &sessions[0]
}

fn messages<'a>(session: &'a Value, direction: &str) -> Vec<&'a Value> {
    let all = session["messages"].as_array().expect("messages array");
    all.iter().filter(|m| m["direction"] == direction).collect()
}

/// Every call's request and response: complete, authenticated, and starting with
/// the bytes `smt call` sent.
fn assert_every_call_decrypted(session: &Value) {
    let expected: BTreeSet<String> =
        (0..CALLS).map(|call| hex(&call_payload(call, SIZE)[..16])).collect();
    let requests = messages(session, "request");
    let responses = messages(session, "response");
    assert_eq!(requests.len() as u64, CALLS, "{session:#}");
    assert_eq!(responses.len() as u64, CALLS, "{session:#}");
    for m in requests.iter().chain(&responses) {
        assert_eq!(m["size"], SIZE as u64, "{m:#}");
        assert_eq!(m["records"], RECORDS, "{m:#}");
        assert_eq!(m["complete"], true, "{m:#}");
        assert_eq!(m["authenticated"], true, "{m:#}");
        assert_eq!(m["records_opened"], RECORDS, "{m:#}");
        assert_eq!(m["failed_records"].as_array().map(Vec::len), Some(0), "{m:#}");
        assert!(m["data_packets"].as_u64().is_some_and(|n| n >= 1), "{m:#}");
    }
    let sent: BTreeSet<String> =
        requests.iter().map(|m| m["first_bytes_hex"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, expected, "decrypted requests start with what smt call sent");
    for request in &requests {
        let response = responses.iter().find(|r| r["id"] == request["id"]).expect("its response");
        assert_eq!(response["first_bytes_hex"], request["first_bytes_hex"], "an echo");
    }
}

#[test]
fn inspect_decrypts_every_request_and_response_of_a_real_capture() {
    let Some(capture) = record_capture("decrypt", "udp") else { return };
    let report = inspect_json(&capture.pcap, &capture.keylog);
    let session = the_session(&report);
    assert_eq!(session["keys"], "found", "{session:#}");
    assert_eq!(session["transport"], "udp");
    assert!(session["cipher_suite"].as_str().is_some_and(|s| s.starts_with("TLS_")));
    assert_eq!(session["client_random"].as_str().map(str::len), Some(64));

    assert_every_call_decrypted(session);

    let text = inspect_text(&capture.pcap, &capture.keylog);
    assert!(text.contains("keys from the key log"), "{text}");
    assert!(text.contains(&format!("{CALLS} request(s), {CALLS} response(s)")), "{text}");
    assert!(!text.contains("FAILED"), "{text}");
    let first = call_payload(0, SIZE);
    let first_hex: Vec<String> = first[..16].iter().map(|b| format!("{b:02x}")).collect();
    assert!(text.contains(&format!("first bytes: {}", first_hex.join(" "))), "{text}");

    // The same frames in a pcapng file decode the same.
    let pcapng = capture.dir.path().join("smt.pcapng");
    rewrite_as_pcapng(&capture.pcap, &pcapng);
    let again = inspect_json(&pcapng, &capture.keylog);
    assert_eq!(again["capture"]["format"], "pcapng");
    assert_eq!(the_session(&again)["messages"], session["messages"]);
}

#[test]
fn inspect_flags_the_record_whose_ciphertext_was_modified() {
    let Some(capture) = record_capture("corrupt", "udp") else { return };
    let corrupted = capture.dir.path().join("corrupted.pcap");
    let (message_id, record) = flip_one_ciphertext_byte(&capture.pcap, &corrupted);

    let report = inspect_json(&corrupted, &capture.keylog);
    let session = the_session(&report);
    let mut failures = 0;
    for m in session["messages"].as_array().unwrap() {
        let failed = m["failed_records"].as_array().unwrap();
        if m["direction"] == "request" && m["id"] == message_id {
            assert_eq!(failed.len(), 1, "{m:#}");
            assert_eq!(failed[0]["record"], record, "{m:#}");
            assert_eq!(failed[0]["error"], "authentication FAILED", "{m:#}");
            assert_eq!(m["authenticated"], false);
            assert_eq!(m["complete"], true, "every byte was captured, one was wrong");
            assert_eq!(m["records_opened"], RECORDS - 1);
        } else {
            assert_eq!(m["authenticated"], true, "{m:#}");
        }
        failures += failed.len();
    }
    assert_eq!(failures, 1);

    let text = inspect_text(&corrupted, &capture.keylog);
    assert!(text.contains(&format!("record {record}: authentication FAILED")), "{text}");
    assert!(text.contains("1 record(s) failing authentication"), "{text}");
}

#[test]
fn a_key_log_without_the_sessions_client_random_reports_no_keys() {
    let Some(capture) = record_capture("nokeys", "udp") else { return };
    let other = capture.dir.path().join("other.log");
    let unrelated = format!(
        "CLIENT_TRAFFIC_SECRET_0 {} {}\nSERVER_TRAFFIC_SECRET_0 {} {}\n",
        "00".repeat(32),
        "11".repeat(32),
        "00".repeat(32),
        "22".repeat(32)
    );
    std::fs::write(&other, unrelated).unwrap();

    let report = inspect_json(&capture.pcap, &other);
    let session = the_session(&report);
    assert_eq!(session["keys"], "not_in_key_log", "{session:#}");
    assert!(session["keys_note"].as_str().unwrap().contains("no keys in the key log"));
    assert_eq!(messages(session, "request").len() as u64, CALLS);
    assert_eq!(messages(session, "response").len() as u64, CALLS);
    for m in session["messages"].as_array().unwrap() {
        assert_eq!(m["size"], SIZE as u64, "sizes come from the plaintext headers: {m:#}");
        assert_eq!(m["decrypted"], false);
        assert!(m.get("first_bytes_hex").is_none(), "{m:#}");
    }
    let text = inspect_text(&capture.pcap, &other);
    assert!(text.contains("no keys in the key log"), "{text}");
}

#[test]
fn inspect_decrypts_a_native_ip_capture_with_ports_from_the_smt_header() {
    let Some(capture) = record_capture("native", "ip") else { return };
    let report = inspect_json(&capture.pcap, &capture.keylog);
    let session = the_session(&report);
    assert_eq!(session["transport"], "ip", "{session:#}");
    assert_eq!(session["keys"], "found", "{session:#}");
    assert_every_call_decrypted(session);
}

#[test]
fn unreadable_files_give_one_line_errors_naming_them() {
    let dir = TempDir::new("errors");
    let keylog = dir.path().join("keys.log");
    std::fs::write(&keylog, "").unwrap();
    let not_a_capture = dir.path().join("notes.txt");
    std::fs::write(&not_a_capture, "these are not packets").unwrap();
    let missing = dir.path().join("missing.pcap");
    for (capture, keylog, wanted) in [
        (&missing, &keylog, format!("cannot open capture {}", missing.display())),
        (&not_a_capture, &keylog, "not a pcap or pcapng file".to_owned()),
        (&not_a_capture, &missing, format!("cannot read key log {}", missing.display())),
    ] {
        let mut command = smt();
        command.arg("inspect").arg(capture).arg("--keylog").arg(keylog);
        let out = run(command, QUICK);
        assert!(!out.status.success(), "{}", out.stdout);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {}", out.stderr);
        assert!(lines[0].starts_with("error: ") && lines[0].contains(&wanted), "{}", lines[0]);
    }
}

/// Copies a pcap file's frames into a pcapng file (one interface, same link type).
fn rewrite_as_pcapng(pcap: &Path, pcapng: &Path) {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    let mut reader = pcap_file::pcap::PcapReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let link = reader.header().datalink;
    let mut writer =
        pcap_file::pcapng::PcapNgWriter::new(std::fs::File::create(pcapng).unwrap()).unwrap();
    writer.write_pcapng_block(InterfaceDescriptionBlock::new(link, 0)).unwrap();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: packet.timestamp,
                original_len: packet.orig_len,
                data: packet.data,
                options: vec![],
            })
            .unwrap();
    }
}

/// SMT header, DATA body, and record framing, as far as the test needs them.
const HEADER_LEN: usize = 24;
const DATA_HEADER_LEN: usize = 40;
const TYPE_DATA: u8 = 0x10;
const FLAG_FROM_INITIATOR: u8 = 0x02;
const FLAG_BUNDLED: u8 = 0x08;
const RECORD_OVERHEAD: usize = 22;

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// Copies `pcap` to `out`, flipping one byte inside the ciphertext of a record of
/// the first request DATA packet (the last record starting in that packet), and
/// returns (message ID, record index).
fn flip_one_ciphertext_byte(pcap: &Path, out: &Path) -> (u64, usize) {
    let mut reader = pcap_file::pcap::PcapReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let header = reader.header();
    assert_eq!(header.datalink, pcap_file::DataLink::ETHERNET, "tcpdump -i lo writes Ethernet");
    let mut writer =
        pcap_file::pcap::PcapWriter::with_header(std::fs::File::create(out).unwrap(), header)
            .unwrap();
    let mut flipped = None;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        let mut data = packet.data.to_vec();
        if flipped.is_none() {
            flipped = flip_in_frame(&mut data);
        }
        writer
            .write_packet(&pcap_file::pcap::PcapPacket::new(
                packet.timestamp,
                packet.orig_len,
                &data,
            ))
            .unwrap();
    }
    flipped.expect("the capture has a request DATA packet")
}

fn flip_in_frame(frame: &mut [u8]) -> Option<(u64, usize)> {
    // Ethernet (14 bytes) + IPv4 (IHL words) + UDP (8 bytes).
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip_header = usize::from(frame[14] & 0x0f) * 4;
    let mut at = 14 + ip_header + 8;
    // Walk the bundle to each SMT packet.
    while at + DATA_HEADER_LEN < frame.len() {
        let flags = frame[at + 6];
        let len =
            if flags & FLAG_BUNDLED != 0 { be16(&frame[at + 16..]) } else { frame.len() - at };
        if frame[at + 5] == TYPE_DATA && flags & FLAG_FROM_INITIATOR != 0 {
            let id =
                u64::from_be_bytes(frame[at + 16..at + 24].try_into().unwrap()) & 0xffff_ffff_ffff;
            let message_len = be32(&frame[at + HEADER_LEN..]);
            let offset = be32(&frame[at + HEADER_LEN + 4..]);
            let record_size = be16(&frame[at + HEADER_LEN + 12..]);
            let payload = len - DATA_HEADER_LEN;
            let stride = record_size + RECORD_OVERHEAD;
            // A byte 100 bytes into a record is past its 5-byte header and, for the
            // records of SIZE-byte messages, before its 16-byte tag.
            let target = (0..=message_len / stride)
                .rev()
                .map(|k| (k, k * stride + 100))
                .find(|&(_, byte)| byte >= offset && byte < offset + payload && byte < message_len);
            if let Some((record, byte)) = target {
                frame[at + DATA_HEADER_LEN + byte - offset] ^= 0x01;
                return Some((id, record));
            }
        }
        if flags & FLAG_BUNDLED == 0 {
            break;
        }
        at += len;
    }
    None
}
