//! A bound on anonymous passkey ceremony work: `POST /api/login/*` and
//! `/api/enroll/*` need no session, and each start writes a ceremony row, so
//! without a bound anyone could make the server write rows as fast as it
//! answers. Two token buckets, in memory on each instance: one per client
//! address and one for everyone. A request takes one token from both; when
//! either is empty it is refused with 429 and `Retry-After`.
//!
//! The numbers (`Limits::default`, see docs/security.md): per client, bursts
//! of 30 and then one request every 2 s (a sign-in or an enrollment is two
//! requests, so 15 at once and 15 a minute after that, enough for a clinic
//! behind one address at opening time); for everyone, bursts of 200 and then
//! 50 a second per instance, so at most 50 ceremony rows a second and, with
//! their 5 minute lifetime, about 15,000 live rows. At most 10,000 client
//! addresses are remembered; past that, addresses not seen for long enough
//! to have a full bucket are forgotten first, and if none is, new addresses
//! share one bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::{AppState, Error};

/// One token bucket's size and refill rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Requests allowed at once.
    pub burst: f64,
    /// Tokens added per second.
    pub per_second: f64,
}

/// The limits a server runs with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub per_client: Bucket,
    pub global: Bucket,
    /// Most client addresses remembered.
    pub max_clients: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_client: Bucket { burst: 30.0, per_second: 0.5 },
            global: Bucket { burst: 200.0, per_second: 50.0 },
            max_clients: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Tokens {
    tokens: f64,
    at: Instant,
}

impl Tokens {
    fn full(bucket: Bucket, now: Instant) -> Self {
        Self { tokens: bucket.burst, at: now }
    }

    fn refill(&mut self, bucket: Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * bucket.per_second).min(bucket.burst);
        self.at = now;
    }

    /// How long until one token is there (zero if it is).
    fn wait(&self, bucket: Bucket) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / bucket.per_second.max(f64::MIN_POSITIVE))
        }
    }
}

/// The buckets of one server instance.
pub struct RateLimiter {
    limits: Limits,
    state: Mutex<Buckets>,
    /// Whether the client address is the last one in `X-Forwarded-For`
    /// (set by the operator's own proxy) rather than the socket's peer.
    trust_forwarded_for: bool,
}

struct Buckets {
    global: Tokens,
    clients: HashMap<IpAddr, Tokens>,
}

/// Where clients share a bucket once `max_clients` are remembered.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl RateLimiter {
    pub fn new(limits: Limits, trust_forwarded_for: bool) -> Self {
        let now = Instant::now();
        Self {
            limits,
            state: Mutex::new(Buckets {
                global: Tokens::full(limits.global, now),
                clients: HashMap::new(),
            }),
            trust_forwarded_for,
        }
    }

    /// Takes a token for `client` and one from the global bucket, or says
    /// how long to wait; nothing is taken from either when one is empty.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Limits { per_client, global, max_clients } = self.limits;
        let mut state = self.state.lock().expect("rate limiter lock");
        if !state.clients.contains_key(&client) && state.clients.len() >= max_clients {
            // Forget addresses whose buckets have refilled: they are the same as new.
            state.clients.retain(|_, tokens| {
                tokens.refill(per_client, now);
                tokens.tokens < per_client.burst
            });
        }
        let key = if state.clients.contains_key(&client) || state.clients.len() < max_clients {
            client
        } else {
            OVERFLOW
        };
        let mut mine =
            state.clients.get(&key).copied().unwrap_or_else(|| Tokens::full(per_client, now));
        mine.refill(per_client, now);
        state.global.refill(global, now);
        let wait = mine.wait(per_client).max(state.global.wait(global));
        if wait > Duration::ZERO {
            state.clients.insert(key, mine);
            return Err(wait);
        }
        mine.tokens -= 1.0;
        state.global.tokens -= 1.0;
        state.clients.insert(key, mine);
        Ok(())
    }

    /// The client address of a request: the socket's peer, or with
    /// `trust_forwarded_for` the last `X-Forwarded-For` entry.
    fn client(&self, request: &Request) -> IpAddr {
        if self.trust_forwarded_for {
            // Strictly the last entry: earlier ones come from the client.
            let forwarded = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|entry| entry.trim().parse::<IpAddr>().ok());
            if let Some(address) = forwarded {
                return address;
            }
        }
        request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(OVERFLOW, |info| info.0.ip())
    }
}

/// Middleware for the anonymous ceremony routes: 429 with `Retry-After`
/// (whole seconds, at least 1) once a bucket is empty.
pub async fn limit_anonymous(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let limiter = &state.limits;
    if let Err(wait) = limiter.check(limiter.client(&request), Instant::now()) {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::info!(seconds, "anonymous ceremony request refused: rate limit");
        return Err(Error::RateLimited(seconds.max(1)));
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_client: (f64, f64), global: (f64, f64), max_clients: usize) -> RateLimiter {
        RateLimiter::new(
            Limits {
                per_client: Bucket { burst: per_client.0, per_second: per_client.1 },
                global: Bucket { burst: global.0, per_second: global.1 },
                max_clients,
            },
            false,
        )
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn a_client_gets_its_burst_then_one_token_per_interval() {
        let limits = limiter((3.0, 0.5), (100.0, 100.0), 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.check(ip(1), t0), Ok(()));
        }
        let wait = limits.check(ip(1), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        assert_eq!(limits.check(ip(2), t0), Ok(()), "other clients are not affected");
        assert!(limits.check(ip(1), t0 + Duration::from_millis(1900)).is_err());
        assert_eq!(limits.check(ip(1), t0 + Duration::from_secs(2)), Ok(()));
    }

    #[test]
    fn the_global_bucket_bounds_all_clients_together() {
        let limits = limiter((10.0, 1.0), (5.0, 1.0), 100);
        let t0 = Instant::now();
        for n in 0..5 {
            assert_eq!(limits.check(ip(n), t0), Ok(()));
        }
        assert_eq!(limits.check(ip(9), t0), Err(Duration::from_secs(1)));
        assert_eq!(limits.check(ip(9), t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_refilled_clients_are_forgotten() {
        let limits = limiter((2.0, 1.0), (1000.0, 1000.0), 3);
        let t0 = Instant::now();
        for n in 0..3 {
            limits.check(ip(n), t0).unwrap();
        }
        // Table full, nobody refilled: a new address shares the overflow bucket.
        limits.check(ip(7), t0).unwrap();
        limits.check(ip(8), t0).unwrap();
        limits.check(ip(6), t0).unwrap_err();
        assert!(limits.state.lock().unwrap().clients.len() <= 4);
        // Later, the refilled addresses are forgotten and a new one gets its own.
        let later = t0 + Duration::from_secs(10);
        limits.check(ip(9), later).unwrap();
        limits.check(ip(9), later).unwrap();
        assert!(limits.state.lock().unwrap().clients.len() <= 2);
    }
}
