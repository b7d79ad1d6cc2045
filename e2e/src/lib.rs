//! The end-to-end test harness: starts the real service binaries as processes on free loopback
//! ports, each with a fresh PostgreSQL database, and stops them when dropped.
//!
//! Every mesh verifies tokens against its own dev key pair (`target/e2e-logs/<label>/auth`):
//! the harness's own requests carry an admin token unless a test says otherwise
//! ([`Mesh::token`], the `*_as` methods), and [`MeshOptions::dev_auth`] starts it in dev
//! mode, where requests without a token act as `anonymous`, as under `script/server`.
//!
//! Binaries are taken from `MESH_BIN_DIR`, else `$CARGO_TARGET_DIR/debug`, else the workspace's
//! `target/debug`; `cargo test` does not build them: `cargo build --workspace --bins` does
//! (`script/test` runs it first), and the harness refuses a binary older than its sources
//! ([`binaries`]). Each process logs to `target/e2e-logs/<test label>/<service>.log`.
//!
//! Why ~575 lines: starting a mesh (six processes' environments wired together) and controlling
//! its processes (stop, restart, pause, kill, commands) are one job, the supervisor's; the REST
//! client is in `api`, binary lookup in `binaries`, waiting in `waiting`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod api;
pub use api::field_is;
pub mod bench;
pub mod binaries;
pub mod chaos;
pub mod otlp_collector;
pub mod waiting;

use binaries::{fresh_binary, workspace_target};

use mesh_core::auth::Role;
use mesh_core::auth::config::DEV_ISSUER;
use mesh_core::auth::dev_keys::DevIssuer;
use mesh_core::testing::{TestNats, fresh_postgres_database};

/// A service of the mesh that the harness runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Svc {
    /// product-svc.
    Product,
    /// reservation-svc.
    Reservation,
    /// payment-svc.
    Payment,
    /// mypage-svc.
    MyPage,
    /// notice-svc.
    Notice,
    /// the REST gateway.
    Gateway,
}

impl Svc {
    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Product => "product-svc",
            Self::Reservation => "reservation-svc",
            Self::Payment => "payment-svc",
            Self::MyPage => "mypage-svc",
            Self::Notice => "notice-svc",
            Self::Gateway => "gateway",
        }
    }

    /// Its binary, built from its current sources ([`binaries::fresh_binary`]).
    pub fn fresh_binary(self) -> PathBuf {
        fresh_binary(self.binary(), self.binary())
    }

    /// Every process of the mesh: the gRPC services and the gateway.
    pub const ALL: [Svc; 6] = [
        Self::Product,
        Self::Reservation,
        Self::Payment,
        Self::MyPage,
        Self::Notice,
        Self::Gateway,
    ];

    /// Every gRPC service of the mesh.
    pub const GRPC: [Svc; 5] = [
        Self::Product,
        Self::Reservation,
        Self::Payment,
        Self::MyPage,
        Self::Notice,
    ];
}

/// Knobs a test may turn; everything else is the services' defaults.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    /// reservation-svc's `PRODUCT_LOCK_DEADLINE_MS`.
    pub lock_deadline_ms: u64,
    /// reservation-svc's `RECONCILE_GRACE_MS`.
    pub reconcile_grace_ms: u64,
    /// reservation-svc's `RECONCILE_INTERVAL_MS`.
    pub reconcile_interval_ms: u64,
    /// More environment for one service: (service, variable, value).
    pub extra_env: Vec<(Svc, String, String)>,
    /// Run every service on its embedded SQLite file (as `script/server` does) instead of a
    /// fresh PostgreSQL database.
    pub sqlite: bool,
    /// `AUTH_MODE=dev` (requests without a token are `anonymous`) instead of `jwt`; the
    /// harness's own requests then carry no token.
    pub dev_auth: bool,
    /// How many processes of a gRPC service run side by side (default one), sharing its
    /// database; the gateway and reservation-svc balance over all of them.
    pub replicas: BTreeMap<Svc, usize>,
}

impl MeshOptions {
    /// Runs `count` replicas of `svc`.
    pub fn with_replicas(mut self, svc: Svc, count: usize) -> Self {
        self.replicas.insert(svc, count.max(1));
        self
    }

    /// How many replicas of `svc` run (the gateway: one).
    pub fn replicas_of(&self, svc: Svc) -> usize {
        self.replicas.get(&svc).copied().unwrap_or(1)
    }

    /// Sets `name=value` for every service and the gateway.
    pub fn everywhere(mut self, name: &str, value: &str) -> Self {
        for svc in Svc::ALL {
            self.extra_env
                .push((svc, name.to_owned(), value.to_owned()));
        }
        self
    }
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self {
            lock_deadline_ms: 1000,
            reconcile_grace_ms: 5000,
            reconcile_interval_ms: 1000,
            extra_env: Vec::new(),
            sqlite: false,
            dev_auth: false,
            replicas: BTreeMap::new(),
        }
    }
}

struct Process {
    child: Child,
    env: Vec<(String, String)>,
}

/// A running mesh; every process is killed when it is dropped.
pub struct Mesh {
    /// The gateway's base URL, e.g. `http://127.0.0.1:41234`.
    pub gateway_url: String,
    /// An HTTP client for the gateway; its requests carry the harness's admin token (none in
    /// dev mode).
    pub http: reqwest::Client,
    /// An HTTP client that sends no token unless given one.
    pub bare_http: reqwest::Client,
    /// The mesh's own NATS server (JetStream), which a test may restart.
    pub nats: TestNats,
    addrs: BTreeMap<Replica, SocketAddr>,
    metrics_addrs: BTreeMap<Replica, SocketAddr>,
    product_internal_addrs: BTreeMap<Replica, SocketAddr>,
    processes: BTreeMap<Replica, Process>,
    log_dir: PathBuf,
    issuer: DevIssuer,
    default_token: Option<String>,
}

/// One process of the mesh: a service and its replica number (0 for the first, the one the
/// methods that take only a [`Svc`] act on).
pub type Replica = (Svc, usize);

/// The harness's own identity: an admin who is also a buyer and seller, so it may read and
/// act on everything.
pub const HARNESS_USER: &str = "e2e-ops";

impl Mesh {
    /// Starts every service and the gateway, then waits until the gateway is ready.
    pub async fn start(label: &str, options: MeshOptions) -> Mesh {
        let log_dir = workspace_target().join("e2e-logs").join(label);
        // Each run's logs alone: a restart within the run appends, a new run starts afresh.
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir).expect("create e2e log dir");
        let replicas: Vec<Replica> = Svc::ALL
            .iter()
            .flat_map(|svc| (0..options.replicas_of(*svc)).map(|replica| (*svc, replica)))
            .collect();
        let addrs: BTreeMap<Replica, SocketAddr> = replicas
            .iter()
            .map(|key| (*key, free_local_addr()))
            .collect();
        let metrics_addrs = replicas
            .iter()
            .map(|key| (*key, free_local_addr()))
            .collect();
        let product_internal_addrs = replicas
            .iter()
            .filter(|(svc, _)| *svc == Svc::Product)
            .map(|key| (*key, free_local_addr()))
            .collect();
        let nats = TestNats::start();
        provision_jetstream(&nats.url);
        let issuer = DevIssuer::open_or_create(&log_dir.join("auth")).expect("dev token keys");
        let default_token = (!options.dev_auth).then(|| {
            issuer.mint(
                HARNESS_USER,
                &[Role::Admin, Role::Buyer, Role::Seller],
                86_400,
            )
        });
        let auth_env = auth_env(&issuer, &options);
        let mut mesh = Mesh {
            nats,
            gateway_url: format!("http://{}", addrs[&(Svc::Gateway, 0)]),
            http: http_client(default_token.as_deref()),
            bare_http: http_client(None),
            addrs,
            metrics_addrs,
            product_internal_addrs,
            processes: BTreeMap::new(),
            log_dir,
            issuer,
            default_token,
        };
        for svc in Svc::GRPC {
            let database = mesh.database_for(svc, label, &options);
            for replica in 0..options.replicas_of(svc) {
                let env = mesh.service_env((svc, replica), &database, &options, &auth_env);
                mesh.spawn((svc, replica), env);
            }
        }
        let env = mesh.gateway_env(&options, auth_env);
        mesh.spawn((Svc::Gateway, 0), env);
        mesh.wait_ready(Duration::from_secs(30)).await;
        mesh
    }

    /// Where a service's replicas keep their data: one fresh PostgreSQL database shared by
    /// them, or (`sqlite`) the service's default file under the log directory.
    fn database_for(&self, svc: Svc, label: &str, options: &MeshOptions) -> (String, String) {
        if options.sqlite {
            // No DATABASE_URL: the service's own default, a SQLite file under DATA_DIR.
            (
                "DATA_DIR".to_owned(),
                self.log_dir.join("data").to_string_lossy().into_owned(),
            )
        } else {
            let database = fresh_postgres_database(&format!("{label}_{}", svc.binary()));
            ("DATABASE_URL".to_owned(), database)
        }
    }

    /// The environment of one replica of a gRPC service: its addresses, the database its
    /// service owns, NATS, auth, the lock and reconciler settings for reservation-svc, and
    /// the test's extras.
    fn service_env(
        &self,
        key: Replica,
        database: &(String, String),
        options: &MeshOptions,
        auth_env: &[(String, String)],
    ) -> Vec<(String, String)> {
        let svc = key.0;
        let mut env = vec![
            ("GRPC_ADDR".to_owned(), self.addrs[&key].to_string()),
            (
                "METRICS_ADDR".to_owned(),
                self.metrics_addrs[&key].to_string(),
            ),
            (
                "PRODUCT_INTERNAL_URL".to_owned(),
                self.product_internal_urls(),
            ),
            ("NATS_URL".to_owned(), self.nats.url.clone()),
            ("CONSUMER_RETRY_DELAY_MS".to_owned(), "200".to_owned()),
            // Replicas that stop answering leave the balancer within half a second.
            ("UPSTREAM_REFRESH_MS".to_owned(), "500".to_owned()),
            database.clone(),
        ];
        if let Some(internal) = self.product_internal_addrs.get(&key) {
            env.push(("INTERNAL_GRPC_ADDR".to_owned(), internal.to_string()));
        }
        // Small pools: several meshes share the machine's one PostgreSQL in parallel.
        env.push(("DB_POOL_SIZE".to_owned(), "6".to_owned()));
        env.extend(auth_env.iter().cloned());
        if svc == Svc::Reservation {
            env.extend([
                (
                    "PRODUCT_LOCK_DEADLINE_MS".to_owned(),
                    options.lock_deadline_ms.to_string(),
                ),
                (
                    "RECONCILE_GRACE_MS".to_owned(),
                    options.reconcile_grace_ms.to_string(),
                ),
                (
                    "RECONCILE_INTERVAL_MS".to_owned(),
                    options.reconcile_interval_ms.to_string(),
                ),
            ]);
        }
        env.extend(extra_env(options, svc));
        env
    }

    /// The gateway's environment: its addresses, the five services, auth and the extras.
    fn gateway_env(
        &self,
        options: &MeshOptions,
        auth_env: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let gateway = (Svc::Gateway, 0);
        let gateway_env = vec![
            ("HTTP_ADDR".to_owned(), self.addrs[&gateway].to_string()),
            (
                "METRICS_ADDR".to_owned(),
                self.metrics_addrs[&gateway].to_string(),
            ),
            ("UPSTREAM_REFRESH_MS".to_owned(), "500".to_owned()),
            // As the chart sets it: answered within the lock deadline + 100 ms.
            (
                "RESERVE_TIMEOUT_MS".to_owned(),
                (options.lock_deadline_ms + 100).to_string(),
            ),
            ("PRODUCT_SVC_URL".to_owned(), self.grpc_url(Svc::Product)),
            (
                "RESERVATION_SVC_URL".to_owned(),
                self.grpc_url(Svc::Reservation),
            ),
            ("PAYMENT_SVC_URL".to_owned(), self.grpc_url(Svc::Payment)),
            ("MYPAGE_SVC_URL".to_owned(), self.grpc_url(Svc::MyPage)),
            ("NOTICE_SVC_URL".to_owned(), self.grpc_url(Svc::Notice)),
        ];
        let mut gateway_env = gateway_env;
        gateway_env.extend(auth_env);
        // Tests place many reservations quickly; the one that tests the limit sets its own.
        gateway_env.push(("RESERVE_RATE_PER_SEC".to_owned(), "0".to_owned()));
        gateway_env.extend(extra_env(options, Svc::Gateway));
        gateway_env
    }

    /// Every replica of `svc`, as the list of URLs its clients are given.
    fn grpc_url(&self, svc: Svc) -> String {
        let urls: Vec<String> = self
            .addrs
            .iter()
            .filter(|((of, _), _)| *of == svc)
            .map(|(_, addr)| format!("http://{addr}"))
            .collect();
        urls.join(",")
    }

    /// Every product-svc replica's internal listener, as reservation-svc is given them.
    fn product_internal_urls(&self) -> String {
        let urls: Vec<String> = self
            .product_internal_addrs
            .values()
            .map(|addr| format!("http://{addr}"))
            .collect();
        urls.join(",")
    }

    fn spawn(&mut self, key: Replica, env: Vec<(String, String)>) {
        let svc = key.0;
        let binary = svc.fresh_binary();
        let log_path = self.replica_log_path(key);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open service log");
        let child = Command::new(&binary)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        self.processes.insert(key, Process { child, env });
    }

    /// Where `svc` writes its log.
    pub fn log_path(&self, svc: Svc) -> PathBuf {
        self.replica_log_path((svc, 0))
    }

    /// Where a replica writes its log (`<service>.log` for the first, `<service>-<n>.log`).
    pub fn replica_log_path(&self, (svc, replica): Replica) -> PathBuf {
        match replica {
            0 => self.log_dir.join(format!("{}.log", svc.binary())),
            n => self.log_dir.join(format!("{}-{n}.log", svc.binary())),
        }
    }

    /// The URL of `svc`'s Prometheus metrics.
    pub fn metrics_url(&self, svc: Svc) -> String {
        self.replica_metrics_url((svc, 0))
    }

    /// The URL of a replica's Prometheus metrics.
    pub fn replica_metrics_url(&self, key: Replica) -> String {
        format!("http://{}/metrics", self.metrics_addrs[&key])
    }

    /// How many replicas of `svc` this mesh runs.
    pub fn replicas(&self, svc: Svc) -> usize {
        self.addrs.keys().filter(|(of, _)| *of == svc).count()
    }

    /// Waits until `/readyz` answers 200 (every upstream SERVING).
    pub async fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let ready = self
                .http
                .get(self.url("/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "mesh not ready within {limit:?}; logs in {}",
                self.log_dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The gateway URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_url)
    }

    /// The loopback address a service listens on (its first replica's).
    pub fn addr(&self, svc: Svc) -> SocketAddr {
        self.addrs[&(svc, 0)]
    }

    /// The loopback address a replica listens on.
    pub fn replica_addr(&self, key: Replica) -> SocketAddr {
        self.addrs[&key]
    }

    /// product-svc's internal listener (the lock and the admin service; its first replica's).
    pub fn product_internal_addr(&self) -> SocketAddr {
        self.product_internal_addrs[&(Svc::Product, 0)]
    }

    /// A token for `subject` with `roles`, trusted by this mesh, valid for a day.
    pub fn token(&self, subject: &str, roles: &[Role]) -> String {
        self.issuer.mint(subject, roles, 86_400)
    }

    /// A buyer token for `customer`.
    pub fn buyer(&self, customer: &str) -> String {
        self.token(customer, &[Role::Buyer])
    }

    /// A token with exactly `claims`, signed by this mesh's key (expired, misaddressed…).
    pub fn token_with_claims(&self, claims: serde_json::Value) -> String {
        self.issuer.mint_claims(claims)
    }

    /// The token the harness's own requests carry (an admin's; none in dev mode).
    pub fn admin_token(&self) -> Option<&str> {
        self.default_token.as_deref()
    }

    /// Switches product-svc's injected lock faults through its admin service (on the
    /// internal listener, as the harness's admin).
    pub async fn set_reserve_faults(&self, faults: reserve_proto::product::v1::ReserveFaults) {
        use reserve_proto::product::v1::product_admin_service_client::ProductAdminServiceClient;
        let mut admin =
            ProductAdminServiceClient::connect(format!("http://{}", self.product_internal_addr()))
                .await
                .expect("product-svc's admin API");
        let authorization = self
            .default_token
            .as_deref()
            .map(|token| format!("Bearer {token}"));
        admin
            .set_reserve_faults(mesh_core::auth::grpc::on_behalf_of(
                faults,
                authorization.as_deref(),
            ))
            .await
            .expect("faults switched");
    }

    /// `builder` with the harness's own token, if it has one.
    pub fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        with_token(builder, self.default_token.as_deref())
    }

    /// Stops a service with SIGTERM (graceful), waiting for it to exit.
    pub fn stop(&mut self, svc: Svc) {
        if let Some(process) = self.processes.get_mut(&(svc, 0)) {
            signal(&process.child, "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(process.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// Starts a stopped service again, with the same address, database and settings.
    pub fn restart(&mut self, svc: Svc) {
        self.stop(svc);
        let env = self
            .processes
            .remove(&(svc, 0))
            .map(|process| process.env)
            .expect("service was started before");
        self.spawn((svc, 0), env);
    }

    /// Runs the service's binary once with `args` and its environment (database, NATS, …),
    /// e.g. `mypage-svc rebuild`; returns its standard output, failing the test if it fails.
    pub fn run_command(&self, svc: Svc, args: &[&str]) -> String {
        let env = &self.processes[&(svc, 0)].env;
        let output = Command::new(svc.fresh_binary())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|err| panic!("cannot run {} {args:?}: {err}", svc.binary()));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{} {args:?} failed: {stdout}{}",
            svc.binary(),
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Kills a service at once (SIGKILL): no drain, no flush, as a crash or an OOM kill.
    pub fn kill(&mut self, svc: Svc) {
        self.kill_replica((svc, 0));
    }

    /// Kills one replica at once (SIGKILL).
    pub fn kill_replica(&mut self, key: Replica) {
        if let Some(process) = self.processes.get_mut(&key) {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// Whether a service's process has exited (crashed, or failed to start).
    pub fn has_exited(&mut self, svc: Svc) -> bool {
        self.processes
            .get_mut(&(svc, 0))
            .is_none_or(|process| !matches!(process.child.try_wait(), Ok(None)))
    }

    /// The PostgreSQL URL of a service's database (`None` on SQLite, and for the gateway).
    pub fn database_url(&self, svc: Svc) -> Option<String> {
        self.processes[&(svc, 0)]
            .env
            .iter()
            .find(|(name, _)| name == "DATABASE_URL")
            .map(|(_, url)| url.clone())
    }

    /// The process id of a running service.
    pub fn pid(&self, svc: Svc) -> u32 {
        self.processes[&(svc, 0)].child.id()
    }

    /// Freezes a service (SIGSTOP): it keeps its connections but answers nothing, like a
    /// service stuck in a long pause.
    pub fn pause(&self, svc: Svc) {
        signal(&self.processes[&(svc, 0)].child, "STOP");
    }

    /// Thaws a paused service (SIGCONT).
    pub fn resume(&self, svc: Svc) {
        signal(&self.processes[&(svc, 0)].child, "CONT");
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for process in self.processes.values_mut() {
            // A paused process ignores SIGKILL until it is continued on some kernels' ptrace
            // paths; continue it first so it always dies.
            signal(&process.child, "CONT");
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}

/// A client for the gateway whose requests carry `token` unless they set their own.
fn http_client(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("a header value"),
        );
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// `builder` with `Authorization: Bearer <token>` when there is a token.
pub fn with_token(
    builder: reqwest::RequestBuilder,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match token {
        Some(token) => builder.bearer_auth(token),
        None => builder,
    }
}

/// What every process of a mesh is told about tokens: the mode, the harness issuer's keys.
fn auth_env(issuer: &DevIssuer, options: &MeshOptions) -> Vec<(String, String)> {
    vec![
        (
            "AUTH_MODE".to_owned(),
            if options.dev_auth { "dev" } else { "jwt" }.to_owned(),
        ),
        (
            "AUTH_JWKS_FILE".to_owned(),
            issuer.jwks_path().to_string_lossy().into_owned(),
        ),
        ("AUTH_ISSUER".to_owned(), DEV_ISSUER.to_owned()),
    ]
}

fn extra_env(options: &MeshOptions, svc: Svc) -> Vec<(String, String)> {
    options
        .extra_env
        .iter()
        .filter(|(target, _, _)| *target == svc)
        .map(|(_, key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Runs the mesh's provisioning step (the `jetstream-provision` binary), as script/server
/// does. Should it fail, the panic carries what it printed: a failure here is rare and
/// otherwise leaves nothing to go on.
fn provision_jetstream(nats_url: &str) {
    let binary = fresh_binary("jetstream-provision", "mesh-core");
    let output = Command::new(&binary)
        .env("NATS_URL", nats_url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
    assert!(
        output.status.success(),
        "JetStream provisioning failed on {nats_url} ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads a response as status and JSON, failing the test on a non-JSON body.
pub async fn read(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("status {status}: body is not JSON ({err}): {text:?}"));
    (status, json)
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
}

/// A loopback address with a port that was free a moment ago and that no other test of this
/// process was given.
pub fn free_local_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], mesh_core::testing::free_port()))
}

/// Finds a command on PATH or in the project's `.tools/bin` (where `script/test` installs the
/// third-party clients it needs).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin");
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::iter::once(local))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
