//! `ikeda audit` (issue 13, point 2): which IPsec flows a firewall on the
//! path admits, explicitly or only as replies to our own outbound flow.
//!
//! This first part holds the `iptables-save` parser and its verdicts; the
//! other formats (AWS security group / network ACL JSON, `nft -j`), the
//! predictions and the subcommand come next.

pub mod iptables;
