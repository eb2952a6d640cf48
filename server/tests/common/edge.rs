//! Edge-sync test helpers: a TCP relay the test can cut (a partitioned leaf link) and a
//! process stopped when the test ends.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A TCP relay from a local port to `target` that the test can cut (every connection
/// closed, new ones refused) and restore.
pub struct Relay {
    pub port: u16,
    /// Bytes carried, both directions (what went over the wire).
    pub bytes: Arc<std::sync::atomic::AtomicU64>,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(target: u16) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let bytes: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let (c2, k2, b2) = (cut.clone(), conns.clone(), bytes.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(a) = s else { continue };
                if c2.load(Ordering::SeqCst) {
                    let _ = a.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(b) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                k2.lock().unwrap().extend([a.try_clone().unwrap(), b.try_clone().unwrap()]);
                for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
                    let counted = b2.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            counted.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, bytes, cut, conns }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// A nats-server stopped when the test ends, passing or not.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hub nats-server for edge tests: JetStream domain `hub`, a leaf-node listener that
/// does not advertise its address (so a leaf reconnects only through the URL it was
/// given: the relay), with `leaf_extra` added to the `leafnodes` block. Returns it, its
/// client port and its leaf-node port.
pub fn hub_nats(dir: &std::path::Path, leaf_extra: &str) -> (KillOnDrop, u16, u16) {
    use super::nats::{free_port, standalone};
    let (np, lp) = (free_port(), free_port());
    let nd = dir.join("hub-nats");
    std::fs::create_dir_all(&nd).unwrap();
    let conf = format!(
        "listen: 127.0.0.1:{np}\njetstream {{ store_dir: {:?}, domain: hub }}\nleafnodes {{\n  listen: 127.0.0.1:{lp}\n  no_advertise: true\n  {leaf_extra}\n}}\n",
        nd.join("js").display().to_string()
    );
    (KillOnDrop(standalone(&nd, &conf, np)), np, lp)
}
