//! A TCP proxy the test controls, to make a dependency unreachable for one server without
//! touching the machine's services: `cut()` drops every open connection and refuses new
//! ones (accepted, then closed at once); `restore()` forwards again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bumped by `cut()`; each forwarding task ends when it changes.
    generation: watch::Sender<u64>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let (flag, gen_tx) = (up.clone(), generation.clone());
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !flag.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = gen_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
            acceptor,
        }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::Release);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::Release);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}
