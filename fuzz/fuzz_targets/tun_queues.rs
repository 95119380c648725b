//! The flow hash by which the RX thread picks the TUN queue a decrypted
//! packet is written through (ikeda_sys::TunQueues), on arbitrary bytes:
//! the first byte is a queue count (1 to 8), the rest the packet. Nothing
//! may panic; the same bytes always pick the same queue; a write through
//! the queues reaches exactly that queue's other end, or none when the
//! device refuses what is not IP.

#![no_main]

use ikeda_sys::fake::FakeTun;
use ikeda_sys::{TunDevice, TunQueues};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Some((&n, pkt)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8) + 1;
    let (devs, hosts): (Vec<_>, Vec<_>) = (0..n).map(|_| FakeTun::pair("f")).unzip();
    let q = TunQueues::new(devs.into_iter().map(Arc::new).collect()).unwrap();
    let k = q.queues().iter().position(|d| std::ptr::eq(&**d, q.queue_for(pkt))).unwrap();
    assert!(std::ptr::eq(q.queue_for(pkt), &*q.queues()[k]));
    let written = q.write(pkt).is_ok();
    for (i, h) in hosts.iter().enumerate() {
        let got = h.recv_timeout(Some(Duration::ZERO));
        assert_eq!(got.is_some(), written && i == k, "queue {i} of {n}, picked {k}");
    }
});
