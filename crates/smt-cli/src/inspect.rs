//! `smt inspect`: decodes SMT sessions from a packet capture with a TLS key log.
//! (Being written: see the issue tracker, issue 15 item 2.)

use std::path::PathBuf;

/// Arguments of `smt inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The capture to read (pcap or pcapng).
    pub capture: PathBuf,
    /// The NSS key log (SSLKEYLOGFILE) written by either side during the capture.
    #[arg(long)]
    pub keylog: PathBuf,
    /// One JSON document instead of the text report.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("smt inspect is not implemented yet (capture {})", args.capture.display())
}
