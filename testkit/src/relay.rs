//! A relay in front of the database that can go silent, as a network
//! partition or a firewall that forgot an idle flow does.

use tokio::net::TcpListener;
use tokio::sync::watch;

/// A TCP relay in front of a database that a test can make go silent: it
/// stops moving bytes in both directions but keeps every socket open, as a
/// firewall that forgot an idle flow or a network partition does. Neither
/// end sees an error; only a timeout can tell. Stopped when dropped.
pub struct Relay {
    addr: std::net::SocketAddr,
    control: watch::Sender<RelayState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RelayState {
    silent: bool,
    /// Connections opened before the latest `cut` close.
    epoch: u64,
}

impl Relay {
    /// A relay on 127.0.0.1:0 to the host and port of `database_url`.
    pub async fn start(database_url: &str) -> Self {
        let url = url::Url::parse(database_url).expect("database URL");
        let upstream =
            format!("{}:{}", url.host_str().expect("database host"), url.port().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let (control, _) = watch::channel(RelayState::default());
        let task = tokio::spawn(relay(listener, upstream, control.subscribe()));
        Self { addr, control, task }
    }

    /// `database_url` with its host and port replaced by the relay's.
    pub fn url(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(database_url).expect("database URL");
        url.set_host(Some(&self.addr.ip().to_string())).expect("host");
        url.set_port(Some(self.addr.port())).expect("port");
        url.to_string()
    }

    /// Stops forwarding on every connection, open or new. Bytes already in
    /// flight are held, not dropped, so a connection that outlives the
    /// silence carries on intact.
    pub fn silence(&self) {
        self.control.send_modify(|s| s.silent = true);
    }

    pub fn resume(&self) {
        self.control.send_modify(|s| s.silent = false);
    }

    /// Closes every connection open now; new ones work.
    pub fn cut(&self) {
        self.control.send_modify(|s| s.epoch += 1);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The connections live in the accepting task's `JoinSet`, which
        // aborts them as it is dropped.
        self.task.abort();
    }
}

async fn relay(listener: TcpListener, upstream: String, control: watch::Receiver<RelayState>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let upstream = upstream.clone();
        let control = control.clone();
        connections.spawn(async move {
            let epoch = control.borrow().epoch;
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pump(client_read, server_write, control.clone(), epoch),
                pump(server_read, client_write, control, epoch),
            );
        });
        // Forget finished connections.
        while connections.try_join_next().is_some() {}
    }
}

/// Moves bytes one way until end of stream or a cut; while the relay is
/// silent it neither reads nor writes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut control: watch::Receiver<RelayState>,
    epoch: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(flowing) =
            control.wait_for(|s| s.epoch != epoch || !s.silent).await.map(|s| s.epoch == epoch)
        else {
            return;
        };
        if !flowing {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = control.wait_for(|s| s.epoch != epoch) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        // Read just as the relay went silent: held until it resumes.
        let Ok(flowing) =
            control.wait_for(|s| s.epoch != epoch || !s.silent).await.map(|s| s.epoch == epoch)
        else {
            return;
        };
        if !flowing {
            return;
        }
        let written = tokio::select! {
            written = to.write_all(&buffer[..n]) => written,
            _ = control.wait_for(|s| s.epoch != epoch) => return,
        };
        if written.is_err() {
            return;
        }
    }
}
