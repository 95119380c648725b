//! Wire codecs for ikeda: bytes <-> typed views and values.
//!
//! This crate does no I/O, no cryptography and reads no clock. Every parser
//! checks lengths up front and returns a typed [`Error`]; once a view type
//! (`EspPacket`, `Ipv4Header`, ...) has been built with `new_checked`, none of
//! its accessors panics, whatever the bytes are.
//!
//! Layout follows smoltcp's habit: a checked zero-copy view named after the
//! RFC structure, field offsets in a private `field` module, getters named
//! after the RFC fields.

#![forbid(unsafe_code)]

pub mod error;
pub mod esp;
pub mod iana;
pub mod ikev1;
pub mod ikev2;
pub mod ip;
pub mod ipcomp;
pub mod pcap;
pub mod reassembly;
pub mod udp_encap;
pub mod udp_gso;
pub mod vnet;

pub use error::{Error, Fault};
