//! The CLI's choices on top of `smt::tls`: which key-exchange groups to offer, and the
//! pinned provider the demo reports against.

use std::sync::Arc;

use clap::ValueEnum;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use smt::tls::KxPreference;

/// The `--kx` choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Kx {
    /// X25519MLKEM768 first (hybrid post-quantum), then X25519, P-256, P-384.
    #[default]
    PostQuantum,
    /// X25519, P-256 and P-384 only (smallest handshake).
    Classical,
}

impl Kx {
    /// The aws-lc-rs provider offering these groups.
    pub fn provider(self) -> Arc<CryptoProvider> {
        smt::tls::provider_with_kx_groups(match self {
            Kx::PostQuantum => KxPreference::PostQuantum,
            Kx::Classical => KxPreference::Classical,
        })
    }
}

/// The aws-lc-rs provider restricted to one TLS 1.3 cipher suite and one key-exchange
/// group, so that what the demo's handshake negotiates is known without asking rustls.
pub fn pinned_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![aws_lc_rs::kx_group::X25519MLKEM768],
        ..aws_lc_rs::default_provider()
    })
}

/// The names of what [`pinned_provider`] allows (IANA names), for display.
pub const PINNED_SUITE: &str = "TLS_AES_128_GCM_SHA256";
pub const PINNED_KX_GROUP: &str = "X25519MLKEM768";
