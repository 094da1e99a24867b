//! `meshd-load --addr http://127.0.0.1:15010 --proxies 2000 --pods pods.jsonl`
//!
//! N simulated proxies on one meshd, each a real gRPC client with its own TCP connection and
//! its own `AggregatedDiscovery/DeltaStream`, as mesh-proxy does it: a first request with the
//! node, then an ACK for every response. Proxy `i` is the pod on line `i` of `--pods`, one JSON
//! object a line: `{"namespace", "name", "ip", "labels", "workload", "serviceAccount"}` (the
//! pods bench/meshd_push.py created in the cluster).
//!
//! Every proxy records when each resource arrived (unix ns, taken when the response is
//! decoded, before its ACK is sent). Commands on stdin, one JSON answer per line on stdout:
//!
//! - `sync TIMEOUT_S`: waits until every proxy holds a complete set of every type; answers the
//!   start time, each proxy's sync time, resource counts and bytes received.
//! - `wait NAME SINCE_NS TIMEOUT_S`: waits until every proxy that holds resource NAME got a
//!   new version of it at or after SINCE_NS; answers each arrival time, the versions they hold
//!   and the responses of every type received since (a precise push sends only the change).
//! - `responses SINCE_NS`: the responses of every type received since.
//! - `quit`.
//!
//! Progress and errors go to stderr; with `MESHD_LOAD_DUMP=1` also the first resource of each
//! type's first response (to see what proxies get).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mesh_xds::discovery::aggregated_discovery_client::AggregatedDiscoveryClient;
use mesh_xds::discovery::{DeltaRequest, DeltaResponse, Node};
use mesh_xds::types;
use prost::Message;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Semaphore};
use tonic::transport::Endpoint;

struct Args {
    addr: String,
    proxies: usize,
    pods: Vec<Node>,
    connect_concurrency: usize,
    workers: usize,
}

/// The pods of `path`, as the nodes their proxies announce.
fn read_pods(path: &str) -> Result<Vec<Node>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--pods {path}: {e}"))?;
    let mut pods = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let labels = v["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        pods.push(Node {
            pod_name: text("name"),
            namespace: text("namespace"),
            pod_ip: text("ip"),
            service_account: text("serviceAccount"),
            labels,
            workload_name: text("workload"),
            proxy_version: "meshd-load".into(),
            gateway: false,
        });
    }
    Ok(pods)
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: "http://127.0.0.1:15010".into(),
        proxies: 100,
        pods: Vec::new(),
        connect_concurrency: 64,
        workers: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{k} {v}: {e}");
        match k.as_str() {
            "--addr" => a.addr = v,
            "--proxies" => a.proxies = v.parse().map_err(|e| bad(&e))?,
            "--pods" => a.pods = read_pods(&v)?,
            "--connect-concurrency" => a.connect_concurrency = v.parse().map_err(|e| bad(&e))?,
            "--workers" => a.workers = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.pods.len() < a.proxies {
        return Err(format!(
            "--pods lists {} pods, fewer than --proxies {}",
            a.pods.len(),
            a.proxies
        ));
    }
    if a.connect_concurrency == 0 {
        return Err("--connect-concurrency must be at least 1".into());
    }
    Ok(a)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// One copy of each name and version string, whatever the number of proxies holding it.
#[derive(Default)]
struct Interner(Mutex<HashSet<Arc<str>>>);

impl Interner {
    fn get(&self, s: &str) -> Arc<str> {
        let mut set = lock(&self.0);
        if let Some(a) = set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        set.insert(a.clone());
        a
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn type_index(type_url: &str) -> Option<usize> {
    types::ALL.iter().position(|t| *t == type_url)
}

/// After the proxy synced: one resource that arrived (a removal has no version).
struct Update {
    at: u64,
    name: Arc<str>,
    version: Option<Arc<str>>,
}

#[derive(Default)]
struct ProxyState {
    held: [HashMap<Arc<str>, Arc<str>>; 4],
    complete: [bool; 4],
    synced_at: Option<u64>,
    failed: Option<String>,
    bytes: [u64; 4],
    /// (time, type index, resources) of every response after sync.
    responses: Vec<(u64, usize, usize)>,
    updates: Vec<Update>,
}

impl ProxyState {
    fn apply(&mut self, r: &DeltaResponse, at: u64, interner: &Interner) {
        let Some(t) = type_index(&r.type_url) else {
            return;
        };
        self.bytes[t] += r.encoded_len() as u64;
        if std::env::var_os("MESHD_LOAD_DUMP").is_some()
            && !r.resources.is_empty()
            && !self.complete[t]
        {
            eprintln!(
                "{} {}",
                r.type_url,
                String::from_utf8_lossy(&r.resources[0].body)
            );
        }
        let synced = self.synced_at.is_some();
        for res in &r.resources {
            let name = interner.get(&res.name);
            let version = interner.get(&res.version);
            if synced {
                self.updates.push(Update {
                    at,
                    name: name.clone(),
                    version: Some(version.clone()),
                });
            }
            self.held[t].insert(name, version);
        }
        for name in &r.removed_resources {
            if let Some((name, _)) = self.held[t].remove_entry(name.as_str()) {
                if synced {
                    self.updates.push(Update {
                        at,
                        name,
                        version: None,
                    });
                }
            }
        }
        if synced {
            self.responses.push((at, t, r.resources.len()));
        }
        if r.complete {
            self.complete[t] = true;
        }
        if !synced && self.complete.iter().all(|c| *c) {
            self.synced_at = Some(at);
        }
    }
}

struct Shared {
    proxies: Vec<Mutex<ProxyState>>,
    interner: Interner,
    started_at: u64,
}

async fn run_proxy(i: usize, args: Arc<Args>, shared: Arc<Shared>, connecting: Arc<Semaphore>) {
    let fail = |why: String| {
        eprintln!("proxy {i}: {why}");
        lock(&shared.proxies[i]).failed = Some(why);
    };
    let permit = connecting.acquire().await;
    let endpoint = match Endpoint::from_shared(args.addr.clone()) {
        Ok(e) => e.tcp_nodelay(true).connect_timeout(Duration::from_secs(30)),
        Err(e) => return fail(format!("bad address: {e}")),
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return fail(format!("connect: {e}")),
    };
    let mut client = AggregatedDiscoveryClient::new(channel).max_decoding_message_size(256 << 20);
    let (tx, rx) = mpsc::channel::<DeltaRequest>(16);
    let hello = DeltaRequest {
        node: Some(args.pods[i].clone()),
        ..DeltaRequest::default()
    };
    if tx.send(hello).await.is_err() {
        return fail("request channel closed".into());
    }
    let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut responses = match client.delta_stream(requests).await {
        Ok(r) => r.into_inner(),
        Err(e) => return fail(format!("open stream: {e}")),
    };
    drop(permit);
    loop {
        match responses.message().await {
            Ok(Some(r)) => {
                let at = now_ns();
                lock(&shared.proxies[i]).apply(&r, at, &shared.interner);
                let ack = DeltaRequest {
                    type_url: r.type_url,
                    response_nonce: r.nonce,
                    ..DeltaRequest::default()
                };
                if tx.send(ack).await.is_err() {
                    return fail("request channel closed".into());
                }
            }
            Ok(None) => return fail("meshd ended the stream".into()),
            Err(e) => return fail(format!("stream: {e}")),
        }
    }
}

fn percentiles(mut values: Vec<f64>) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0), "n": values.len()})
}

fn sync_report(shared: &Shared) -> Value {
    let mut synced = Vec::new();
    let mut failed = 0;
    let mut bytes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut counts: BTreeMap<&str, BTreeMap<usize, usize>> = BTreeMap::new();
    for p in &shared.proxies {
        let p = lock(p);
        if p.failed.is_some() {
            failed += 1;
        }
        if let Some(t) = p.synced_at {
            synced.push(t);
        }
        for (t, b) in p.bytes.iter().enumerate() {
            *bytes.entry(types::ALL[t]).or_default() += b;
        }
        for (t, held) in p.held.iter().enumerate() {
            *counts
                .entry(types::ALL[t])
                .or_default()
                .entry(held.len())
                .or_default() += 1;
        }
    }
    let since_start: Vec<f64> = synced
        .iter()
        .map(|t| t.saturating_sub(shared.started_at) as f64 / 1e9)
        .collect();
    json!({
        "proxies": shared.proxies.len(),
        "synced": synced.len(),
        "failed": failed,
        "started_at": shared.started_at,
        "last_synced_at": synced.iter().max(),
        "sync_seconds": percentiles(since_start),
        "bytes": bytes,
        // Per type: how many proxies hold how many resources.
        "held": counts,
    })
}

fn responses_since(shared: &Shared, since: u64) -> Value {
    let mut by_type: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for p in &shared.proxies {
        for (at, t, n) in &lock(p).responses {
            if *at >= since {
                let e = by_type.entry(types::ALL[*t]).or_default();
                e.0 += 1;
                e.1 += n;
            }
        }
    }
    by_type
        .into_iter()
        .map(|(t, (responses, resources))| {
            (
                t.to_owned(),
                json!({"responses": responses, "resources": resources}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Arrival of `name` at or after `since` at every proxy holding it (or that got it).
fn arrivals(shared: &Shared, name: &str, since: u64) -> (Vec<u64>, usize, BTreeMap<String, usize>) {
    let mut arrived = Vec::new();
    let mut missing = 0;
    let mut versions: BTreeMap<String, usize> = BTreeMap::new();
    for p in &shared.proxies {
        let p = lock(p);
        if p.failed.is_some() {
            continue;
        }
        let first = p.updates.iter().find(|u| u.at >= since && &*u.name == name);
        let holds = p.held.iter().find_map(|h| h.get(name));
        match (first, holds) {
            (Some(u), _) => {
                arrived.push(u.at);
                let v = holds
                    .map(|v| v.to_string())
                    .or_else(|| u.version.as_ref().map(|v| v.to_string()))
                    .unwrap_or_else(|| "(removed)".into());
                *versions.entry(v).or_default() += 1;
            }
            (None, Some(_)) => missing += 1,
            (None, None) => {}
        }
    }
    (arrived, missing, versions)
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn command(line: &str, shared: &Arc<Shared>) -> Option<Value> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let seconds = |i: usize| {
        Duration::from_secs_f64(
            words
                .get(i)
                .and_then(|w| w.parse::<f64>().ok())
                .unwrap_or(60.0),
        )
    };
    let number = |i: usize| {
        words
            .get(i)
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(match words.first().copied() {
        Some("sync") => {
            let all = wait_until(seconds(1), || {
                shared.proxies.iter().all(|p| {
                    let p = lock(p);
                    p.synced_at.is_some() || p.failed.is_some()
                })
            })
            .await;
            let mut report = sync_report(shared);
            report["timed_out"] = json!(!all);
            report
        }
        Some("wait") => {
            let name = words.get(1).copied().unwrap_or_default();
            let since = number(2);
            let all = wait_until(seconds(3), || arrivals(shared, name, since).1 == 0).await;
            // Late arrivals of the same change are still coming in; a short pause lets a
            // second push (a regression: the change sent twice) show in the counts.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (arrived, missing, versions) = arrivals(shared, name, since);
            json!({
                "name": name,
                "timed_out": !all,
                "arrived": arrived,
                "missing": missing,
                "versions": versions,
                "responses": responses_since(shared, since),
            })
        }
        Some("responses") => json!({"responses": responses_since(shared, number(1))}),
        Some("quit") | None => return None,
        Some(other) => json!({"error": format!("unknown command {other}")}),
    })
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("meshd-load: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshd-load: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shared = Arc::new(Shared {
            proxies: (0..args.proxies)
                .map(|_| Mutex::new(ProxyState::default()))
                .collect(),
            interner: Interner::default(),
            started_at: now_ns(),
        });
        let connecting = Arc::new(Semaphore::new(args.connect_concurrency));
        for i in 0..args.proxies {
            tokio::spawn(run_proxy(
                i,
                args.clone(),
                shared.clone(),
                connecting.clone(),
            ));
        }
        eprintln!(
            "meshd-load: {} proxies connecting to {}",
            args.proxies, args.addr
        );
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut stdout = tokio::io::stdout();
        while let Ok(Some(line)) = lines.next_line().await {
            let Some(answer) = command(&line, &shared).await else {
                break;
            };
            let mut text = answer.to_string();
            text.push('\n');
            if stdout.write_all(text.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
        std::process::ExitCode::SUCCESS
    })
}
