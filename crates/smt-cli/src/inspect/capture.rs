//! Reading capture files: pcap and pcapng (with the `pcap-file` crate), one frame at
//! a time, each with the link type of the interface it was captured on.

use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

use super::link;

/// The two container formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        })
    }
}

/// One captured frame.
#[derive(Debug)]
pub struct Frame<'a> {
    /// 1-based position in the file, as Wireshark numbers frames.
    pub number: u64,
    /// Link type of the frame's interface.
    pub link: DataLink,
    /// The captured bytes (perhaps fewer than were on the wire: snap length).
    pub data: &'a [u8],
}

/// What the file held, besides its frames.
#[derive(Debug)]
pub struct CaptureInfo {
    pub format: Format,
    /// Link types of the file's interfaces, in order of appearance.
    pub link_types: Vec<DataLink>,
    /// Frames read (including those on interfaces of unsupported link types).
    pub frames: u64,
    /// Frames skipped because their interface's link type is not supported.
    pub unsupported_frames: u64,
    /// Why reading stopped before the end of the file, if it did: a capture cut off
    /// mid-record (tcpdump killed) is still worth decoding up to there.
    pub damaged_end: Option<String>,
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads the capture at `path`, calling `on_frame` for every frame of a supported
/// link type.
pub fn read(path: &Path, on_frame: impl FnMut(&Frame<'_>)) -> Result<CaptureInfo> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open capture {}", path.display()))?;
    read_from(file, on_frame).with_context(|| format!("capture {}", path.display()))
}

/// [`read`] from any reader (the unit tests use in-memory files).
pub fn read_from<R: Read>(mut input: R, on_frame: impl FnMut(&Frame<'_>)) -> Result<CaptureInfo> {
    let mut magic = [0u8; 4];
    input.read_exact(&mut magic).context("too short to be a pcap or pcapng file")?;
    // Give the reader back the bytes we looked at.
    let input = std::io::Cursor::new(magic).chain(input);
    if PCAP_MAGICS.contains(&magic) {
        read_pcap(input, on_frame)
    } else if magic == PCAPNG_MAGIC {
        read_pcapng(input, on_frame)
    } else {
        bail!("not a pcap or pcapng file (it starts with {})", super::keylog::hex(&magic))
    }
}

/// The error with its cause: pcap-file's own message for I/O errors is only
/// "Error reading bytes".
fn describe(error: &pcap_file::PcapError) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

fn unsupported(link: DataLink) -> anyhow::Error {
    anyhow::anyhow!(
        "unsupported link type {link:?} ({}): smt inspect reads Ethernet, Linux cooked \
         (SLL, SLL2: tcpdump -i any), raw IPv4/IPv6 and BSD loopback captures",
        u32::from(link)
    )
}

fn read_pcap<R: Read>(input: R, mut on_frame: impl FnMut(&Frame<'_>)) -> Result<CaptureInfo> {
    let mut reader = PcapReader::new(input).context("not a valid pcap file")?;
    let link = reader.header().datalink;
    if !link::is_supported(link) {
        return Err(unsupported(link));
    }
    let mut info = CaptureInfo {
        format: Format::Pcap,
        link_types: vec![link],
        frames: 0,
        unsupported_frames: 0,
        damaged_end: None,
    };
    // Raw packets: the validated ones refuse a frame whose original length exceeds
    // the snap length, which is every long frame of a `tcpdump -s N` capture.
    while let Some(packet) = reader.next_raw_packet() {
        match packet {
            Ok(packet) => {
                info.frames += 1;
                on_frame(&Frame { number: info.frames, link, data: &packet.data });
            }
            Err(e) => {
                info.damaged_end = Some(format!("after frame {}: {}", info.frames, describe(&e)));
                break;
            }
        }
    }
    Ok(info)
}

fn read_pcapng<R: Read>(input: R, mut on_frame: impl FnMut(&Frame<'_>)) -> Result<CaptureInfo> {
    let mut reader = PcapNgReader::new(input).context("not a valid pcapng file")?;
    let mut info = CaptureInfo {
        format: Format::PcapNg,
        link_types: Vec::new(),
        frames: 0,
        unsupported_frames: 0,
        damaged_end: None,
    };
    // Interfaces of the current section; frames name theirs by index.
    let mut interfaces: Vec<DataLink> = Vec::new();
    while let Some(block) = reader.next_block() {
        let block = match block {
            Ok(block) => block,
            Err(e) => {
                // The reader cannot resynchronise after a bad block.
                info.damaged_end = Some(format!("after frame {}: {}", info.frames, describe(&e)));
                break;
            }
        };
        let (interface, data) = match &block {
            Block::SectionHeader(_) => {
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                interfaces.push(idb.linktype);
                if !info.link_types.contains(&idb.linktype) {
                    info.link_types.push(idb.linktype);
                }
                continue;
            }
            Block::EnhancedPacket(epb) => (usize::try_from(epb.interface_id).ok(), &epb.data),
            Block::SimplePacket(spb) => (Some(0), &spb.data),
            Block::Packet(pb) => (Some(usize::from(pb.interface_id)), &pb.data),
            _ => continue,
        };
        info.frames += 1;
        match interface.and_then(|i| interfaces.get(i)).copied() {
            Some(link) if link::is_supported(link) => {
                on_frame(&Frame { number: info.frames, link, data });
            }
            // A frame of an undeclared interface cannot be decoded either.
            _ => info.unsupported_frames += 1,
        }
    }
    if info.frames > 0 && info.unsupported_frames == info.frames {
        let link = info.link_types.first().copied().unwrap_or(DataLink::Unknown(u32::MAX));
        return Err(unsupported(link));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;

    use super::*;

    /// (frame number, link type, bytes) of each frame handed over.
    type Frames = Vec<(u64, DataLink, Vec<u8>)>;

    fn collect(bytes: &[u8]) -> Result<(CaptureInfo, Frames)> {
        let mut frames = Vec::new();
        let info = read_from(bytes, |f| frames.push((f.number, f.link, f.data.to_vec())))?;
        Ok((info, frames))
    }

    fn pcap_file(link: DataLink, frames: &[&[u8]]) -> Vec<u8> {
        let header = PcapHeader { datalink: link, snaplen: 100, ..Default::default() };
        let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
        for data in frames {
            writer.write_packet(&PcapPacket::new(Duration::ZERO, 200, data)).unwrap();
        }
        writer.into_writer()
    }

    #[test]
    fn pcap_frames_are_read_in_order_even_when_cut_by_the_snap_length() {
        // The original length (200) exceeds the snap length (100), as with tcpdump -s.
        let bytes = pcap_file(DataLink::RAW, &[b"first", b"second"]);
        let (info, frames) = collect(&bytes).unwrap();
        assert_eq!(info.format, Format::Pcap);
        assert_eq!(info.frames, 2);
        assert!(info.damaged_end.is_none());
        assert_eq!(frames[0], (1, DataLink::RAW, b"first".to_vec()));
        assert_eq!(frames[1], (2, DataLink::RAW, b"second".to_vec()));
    }

    #[test]
    fn a_capture_cut_off_mid_frame_keeps_the_frames_before() {
        let mut bytes = pcap_file(DataLink::ETHERNET, &[b"complete", b"cut short"]);
        bytes.truncate(bytes.len() - 3);
        let (info, frames) = collect(&bytes).unwrap();
        assert_eq!(frames.len(), 1);
        let why = info.damaged_end.unwrap();
        assert!(why.starts_with("after frame 1: ") && why.contains("end of file"), "{why}");
    }

    #[test]
    fn pcap_with_an_unsupported_link_type_is_an_error_naming_it() {
        let bytes = pcap_file(DataLink::IEEE802_11, &[b"x"]);
        let error = collect(&bytes).unwrap_err().to_string();
        assert!(error.contains("unsupported link type IEEE802_11 (105)"), "{error}");
    }

    #[test]
    fn other_files_are_refused_with_their_first_bytes() {
        let error = collect(b"hello world").unwrap_err().to_string();
        assert!(error.contains("not a pcap or pcapng file (it starts with 68656c6c)"), "{error}");
        assert!(collect(b"ab").is_err());
    }

    fn epb(interface_id: u32, data: &[u8]) -> EnhancedPacketBlock<'_> {
        EnhancedPacketBlock {
            interface_id,
            timestamp: Duration::ZERO,
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        }
    }

    #[test]
    fn pcapng_frames_carry_their_own_interfaces_link_type() {
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::LINUX_SLL2, 0)).unwrap();
        writer.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::IEEE802_11, 0)).unwrap();
        writer.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0)).unwrap();
        writer.write_pcapng_block(epb(0, b"on sll2")).unwrap();
        writer.write_pcapng_block(epb(1, b"on wifi")).unwrap();
        writer.write_pcapng_block(epb(2, b"on ethernet")).unwrap();
        // The writer refuses a frame of an undeclared interface: patch one in.
        let at = writer.get_ref().len();
        writer.write_pcapng_block(epb(2, b"no such interface")).unwrap();
        let mut bytes = writer.into_inner();
        bytes[at + 8..at + 12].copy_from_slice(&7u32.to_ne_bytes());
        let (info, frames) = collect(&bytes).unwrap();
        assert_eq!(info.format, Format::PcapNg);
        assert_eq!(info.frames, 4);
        assert_eq!(info.unsupported_frames, 2);
        assert_eq!(
            frames,
            vec![
                (1, DataLink::LINUX_SLL2, b"on sll2".to_vec()),
                (3, DataLink::ETHERNET, b"on ethernet".to_vec())
            ]
        );
    }

    #[test]
    fn pcapng_with_only_unsupported_interfaces_is_an_error() {
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::USB_LINUX, 0)).unwrap();
        writer.write_pcapng_block(epb(0, b"usb")).unwrap();
        let error = collect(&writer.into_inner()).unwrap_err().to_string();
        assert!(error.contains("unsupported link type USB_LINUX"), "{error}");
    }

    /// Capture files are attacker-controlled too: a damaged file is an error or a
    /// shorter read, never a crash.
    #[test]
    fn mutated_capture_files_never_panic() {
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0)).unwrap();
        for i in 0..4u8 {
            writer.write_pcapng_block(epb(0, &[i; 30])).unwrap();
        }
        let files = [writer.into_inner(), pcap_file(DataLink::RAW, &[&[1; 30], &[2; 40]])];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Each reader allocates an 8 MB buffer: keep the count modest.
        for _ in 0..1_500 {
            for file in &files {
                let mut bytes = file.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
                let _ = collect(&bytes);
                let cut = (next() as usize) % bytes.len();
                let _ = collect(&bytes[..cut]);
            }
        }
    }
}
