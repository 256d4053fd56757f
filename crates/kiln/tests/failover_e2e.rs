//! Several servers on one PostgreSQL database: real `kiln server` and `kiln agent`
//! processes, the leader killed (`kill -9`) or cut off from the database while work runs.
//! What the database recorded is checked directly: exactly one succeeded attempt per
//! instance, and no attempt first written after its epoch was superseded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Proc, free_port, kiln_bin, wait_until};

/// One SQL statement on `url`; every row's columns as text.
fn sql(url: &str, query: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let mut out = Vec::new();
        for msg in client.simple_query(query).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = msg {
                out.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
        }
        drop(client);
        let _ = conn.await;
        out
    })
}

fn one(url: &str, query: &str) -> String {
    sql(url, query)
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default()
}

fn num(url: &str, query: &str) -> i64 {
    one(url, query).parse().unwrap_or(0)
}

/// The database's clock, in ms.
fn db_now(url: &str) -> i64 {
    num(
        url,
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    )
}

struct Server {
    port: u16,
    data: PathBuf,
    db: String,
    proc: Option<Proc>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let mut child = Command::new(kiln_bin())
            .args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--db", &self.db, "--lease-ttl", "2", "--cpus", "1"])
            .args(["--heartbeat-interval", "1", "--heartbeat-timeout", "10"])
            .env("KILN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let port = self.port;
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("server {port}: {line}");
            }
        });
        self.proc = Some(Proc(child));
        let url = self.url();
        wait_until(60, "the server to answer", || role(&url).is_some());
    }

    fn kill(&mut self) {
        self.proc = None;
    }
}

/// `leader` or `standby`, as the server's health says; `None` if it does not answer.
fn role(url: &str) -> Option<String> {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{url}/v1/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    let v: Value = resp.json().ok()?;
    v["role"].as_str().map(str::to_string)
}

struct Setup {
    dir: tempfile::TempDir,
    db: String,
    servers: Vec<Server>,
    agents: Vec<Proc>,
}

impl Setup {
    /// Two servers on `db` (the first made the tokens and secrets key, the second was given them).
    fn new(db: String, db_second: Option<String>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut servers = Vec::new();
        for (i, url) in [Some(db.clone()), db_second].into_iter().enumerate() {
            let data = dir.path().join(format!("server-{i}"));
            std::fs::create_dir_all(&data).unwrap();
            servers.push(Server {
                port: free_port(),
                data,
                db: url.unwrap_or_else(|| db.clone()),
                proc: None,
            });
        }
        let mut s = Setup {
            dir,
            db,
            servers,
            agents: Vec::new(),
        };
        s.servers[0].start();
        wait_until(30, "the first server to lead", || {
            role(&s.servers[0].url()).as_deref() == Some("leader")
        });
        for name in ["admin-token", "agent-token", "secrets.key"] {
            std::fs::copy(s.servers[0].data.join(name), s.servers[1].data.join(name)).unwrap();
        }
        s.servers[1].start();
        assert_eq!(role(&s.servers[1].url()).as_deref(), Some("standby"));
        s
    }

    fn urls(&self) -> String {
        self.servers
            .iter()
            .map(Server::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start_agent(&mut self, name: &str, slots: u32) {
        let child = Command::new(kiln_bin())
            .args(["agent", "--server", &self.urls(), "--name", name])
            .args(["--compute-env", "pool", "--slots", &slots.to_string()])
            .arg("--token-file")
            .arg(self.servers[0].data.join("agent-token"))
            .arg("--work-dir")
            .arg(self.dir.path().join(name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.agents.push(Proc(child));
    }

    /// A CLI command against `servers` (comma-separated URLs).
    fn kiln(&self, servers: &str, args: &[&str]) -> (i32, String) {
        let out = Command::new(kiln_bin())
            .args(args)
            .args(["--server", servers])
            .arg("--token-file")
            .arg(self.servers[0].data.join("admin-token"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    fn spec(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn submit(&self, servers: &str, spec: &Path) -> String {
        let (code, out) = self.kiln(servers, &["submit", spec.to_str().unwrap(), "-o", "json"]);
        assert_eq!(code, 0, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    fn leader(&self) -> Option<usize> {
        let url = one(
            &self.db,
            "SELECT url FROM leader WHERE expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        );
        self.servers.iter().position(|s| s.url() == url)
    }

    fn succeeded(&self, job: &str) -> i64 {
        num(
            &self.db,
            &format!(
                "SELECT count(*) FROM instances i JOIN jobs j ON j.seq = i.job
                 WHERE j.id = '{job}' AND i.state = 'SUCCEED'"
            ),
        )
    }

    fn job_state(&self, job: &str) -> String {
        one(
            &self.db,
            &format!("SELECT state FROM jobs WHERE id = '{job}'"),
        )
    }

    /// What the database says about a finished job of `n` instances: each succeeded exactly
    /// once, and no attempt was first written after its leader's term was superseded.
    fn check_records(&self, job: &str, n: i64) {
        let seq = format!("(SELECT seq FROM jobs WHERE id = '{job}')");
        assert_eq!(self.job_state(job), "SUCCEED");
        assert_eq!(self.succeeded(job), n, "SUCCEED instance records");
        assert_eq!(
            num(
                &self.db,
                &format!("SELECT count(*) FROM attempts WHERE job = {seq} AND state = 'SUCCEED'")
            ),
            n,
            "succeeded attempts"
        );
        assert_eq!(
            num(
                &self.db,
                &format!(
                    "SELECT count(*) FROM (SELECT idx FROM attempts WHERE job = {seq}
                     GROUP BY task, idx HAVING count(*) FILTER (WHERE state = 'SUCCEED') <> 1) x"
                )
            ),
            0,
            "an instance without exactly one succeeded attempt"
        );
        // Attempt numbers of an instance run 1..=k with no gap and no repeat.
        assert_eq!(
            num(
                &self.db,
                &format!(
                    "SELECT count(*) FROM (SELECT idx FROM attempts WHERE job = {seq}
                     GROUP BY task, idx HAVING max(attempt) <> count(*)) x"
                )
            ),
            0,
            "an attempt recorded twice or skipped"
        );
        assert_eq!(
            num(
                &self.db,
                &format!(
                    "SELECT count(*) FROM attempts a LEFT JOIN leader_terms t ON t.epoch = a.epoch
                     WHERE a.job = {seq} AND t.epoch IS NULL"
                )
            ),
            0,
            "an attempt dispatched under no term"
        );
        assert_eq!(
            num(
                &self.db,
                &format!(
                    "SELECT count(*) FROM attempts a JOIN leader_terms t ON t.epoch > a.epoch
                     WHERE a.job = {seq} AND a.recorded_at > t.granted_at"
                )
            ),
            0,
            "an attempt committed under a stale epoch"
        );
    }
}

/// The leader is `kill -9`ed ten times while a job of 5,000 instances runs (each time it
/// comes back as a standby); the job ends with every instance succeeded exactly once.
#[test]
fn the_leader_killed_ten_times_loses_nothing_and_runs_nothing_twice() {
    const N: i64 = 5_000;
    const KILLS: i64 = 10;
    let mut s = Setup::new(kiln_store::conformance::fresh_pg_database(), None);
    s.start_agent("a1", 4);
    s.start_agent("a2", 4);
    let spec = s.spec(
        "big.yaml",
        &format!(
            "name: big\ntasks:\n  work:\n    instances: {N}\n    compute_env: pool\n    command: sleep 0.02\n"
        ),
    );
    // Submitted to the standby, which stores it for the leader to adopt.
    let standby = s.servers[1].url();
    let id = s.submit(&standby, &spec);

    let mut failovers = Vec::new();
    for k in 1..=KILLS {
        let at = k * N / (KILLS + 2);
        let deadline = Instant::now() + Duration::from_secs(300);
        while s.succeeded(&id) < at {
            assert!(Instant::now() < deadline, "no progress to {at}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let leader = s.leader().expect("a leader");
        let epoch = num(&s.db, "SELECT epoch FROM leader");
        s.servers[leader].kill();
        let killed_at = db_now(&s.db);
        s.servers[leader].start();
        // The next dispatch under a newer epoch.
        let deadline = Instant::now() + Duration::from_secs(60);
        let next = loop {
            let first = num(
                &s.db,
                &format!(
                    "SELECT coalesce(min(recorded_at), 0) FROM attempts WHERE epoch > {epoch}"
                ),
            );
            if first > 0 {
                break first;
            }
            assert!(Instant::now() < deadline, "no dispatch after kill {k}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let ms = next - killed_at;
        eprintln!("failover {k}: kill -9 of the leader to the next dispatch: {ms} ms");
        failovers.push(ms);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while s.job_state(&id) != "SUCCEED" {
        assert!(
            Instant::now() < deadline,
            "the job did not finish: {}",
            s.job_state(&id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    s.check_records(&id, N);
    failovers.sort_unstable();
    eprintln!(
        "failover times (ms), sorted: {failovers:?}; median {} ms",
        failovers[failovers.len() / 2]
    );
    // Both servers answer reads, whichever leads.
    for server in &s.servers {
        let (code, out) = s.kiln(&server.url(), &["job", "show", &id, "-o", "json"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("\"SUCCEED\""), "{out}");
    }
}

/// The leader is cut off from the database while it keeps running: it stops scheduling, the
/// other server takes over, and when the first is back it stays a standby.
#[test]
fn a_leader_cut_off_from_the_database_steps_down_and_rejoins_as_a_standby() {
    const N: i64 = 400;
    let admin = kiln_store::conformance::fresh_pg_database();
    // Each server logs in as a role of its own, so that one can be shut out.
    let as_role = |role: &str| {
        let (_, host) = admin.rsplit_once('@').unwrap();
        format!("postgres://{role}@{host}")
    };
    // Roles belong to the whole PostgreSQL server: name them after this test's database.
    let (_, database) = admin.rsplit_once('/').unwrap();
    let (role_a, role_b) = (format!("{database}_a"), format!("{database}_b"));
    for role in [&role_a, &role_b] {
        sql(&admin, &format!("CREATE ROLE {role} LOGIN SUPERUSER"));
    }
    let mut s = Setup::new(as_role(&role_a), Some(as_role(&role_b)));
    s.db = admin.clone();
    s.start_agent("a1", 4);
    let spec = s.spec(
        "cut.yaml",
        &format!(
            "name: cut\ntasks:\n  work:\n    instances: {N}\n    compute_env: pool\n    command: sleep 0.05\n"
        ),
    );
    let id = s.submit(&s.urls(), &spec);
    wait_until(120, "some progress", || s.succeeded(&id) >= N / 4);
    assert_eq!(s.leader(), Some(0));
    let a = s.servers[0].url();
    let b = s.servers[1].url();

    // Cut A off: no new connection, and its open ones are gone.
    sql(&admin, &format!("ALTER ROLE {role_a} NOLOGIN"));
    sql(
        &admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role_a}'"
        ),
    );
    let cut = Instant::now();
    wait_until(30, "A to stop scheduling", || {
        role(&a).as_deref() == Some("standby")
    });
    eprintln!(
        "A stood down {} ms after it was cut off",
        cut.elapsed().as_millis()
    );
    assert!(cut.elapsed() < Duration::from_secs(10), "A kept leading");
    wait_until(30, "B to take over", || {
        role(&b).as_deref() == Some("leader")
    });
    assert_eq!(s.leader(), Some(1));

    // A comes back: it stays a standby while B leads, and answers reads.
    sql(&admin, &format!("ALTER ROLE {role_a} LOGIN"));
    wait_until(300, "the job to finish", || s.job_state(&id) == "SUCCEED");
    assert_eq!(role(&a).as_deref(), Some("standby"));
    assert_eq!(s.leader(), Some(1));
    let (code, out) = s.kiln(&a, &["job", "show", &id, "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    s.check_records(&id, N);
}

/// A request to `url` with the admin token; its status and JSON body (`null` if none).
fn call(s: &Setup, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let token = std::fs::read_to_string(s.servers[0].data.join("admin-token")).unwrap();
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), url)
        .bearer_auth(token.trim())
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Terminate, retry and delete sent to the standby are acted on by the leader, and answered
/// with what the leader answered; creating one template on both servers at once stores it once.
#[test]
fn writes_sent_to_the_standby_are_acted_on_by_the_leader() {
    let mut s = Setup::new(kiln_store::conformance::fresh_pg_database(), None);
    s.start_agent("w1", 2);
    let leader = s.servers[0].url();
    let standby = s.servers[1].url();
    let spec = s.spec(
        "long.yaml",
        "name: long\ntasks:\n  work:\n    instances: 2\n    compute_env: pool\n    command: sleep 600\n",
    );
    let id = s.submit(&standby, &spec);
    let running = || {
        num(
            &s.db,
            &format!(
                "SELECT count(*) FROM instances i JOIN jobs j ON j.seq = i.job
                 WHERE j.id = '{id}' AND i.state = 'RUNNING'"
            ),
        )
    };
    wait_until(60, "both instances to run", || running() == 2);

    // Terminate one instance, then the job, through the standby.
    let (code, body) = call(
        &s,
        "POST",
        &format!("{standby}/v1/jobs/{id}/tasks/work/instances/1/terminate"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["id"], id.as_str(), "{body}");
    wait_until(60, "instance 1 to stop", || running() == 1);
    let (code, body) = call(
        &s,
        "POST",
        &format!("{standby}/v1/jobs/{id}/terminate"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    wait_until(60, "the job to fail", || s.job_state(&id) == "FAILED");
    // The leader's refusal comes back through the standby.
    let (code, body) = call(
        &s,
        "POST",
        &format!("{standby}/v1/jobs/{id}/terminate"),
        None,
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already finished"),
        "{body}"
    );

    // Retry through the standby runs it again; then terminate and delete it there too.
    let finished_at = num(
        &s.db,
        &format!("SELECT updated_at FROM jobs WHERE id = '{id}'"),
    );
    let (code, body) = call(&s, "POST", &format!("{standby}/v1/jobs/{id}/retry"), None);
    assert_eq!(code, 200, "{body}");
    wait_until(60, "the retried instances to run", || running() == 2);
    let (code, body) = call(
        &s,
        "POST",
        &format!("{standby}/v1/jobs/{id}/terminate"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    wait_until(60, "the job to fail again", || s.job_state(&id) == "FAILED");
    // The same retry, stored again as if a leader had acted on it and died before answering:
    // the next leader answers it without retrying the job a second time.
    let attempts = format!(
        "SELECT count(*) FROM attempts WHERE job = (SELECT seq FROM jobs WHERE id = '{id}')"
    );
    let before = num(&s.db, &attempts);
    let command = serde_json::json!({"op": "retry_job", "job": id, "finished_at": finished_at});
    let cid = num(
        &s.db,
        &format!("INSERT INTO commands (command, created_at) VALUES ('{command}', 0) RETURNING id"),
    );
    wait_until(30, "the repeated retry to be answered", || {
        one(
            &s.db,
            &format!("SELECT coalesce(status::text, '') FROM commands WHERE id = {cid}"),
        ) == "200"
    });
    assert_eq!(
        s.job_state(&id),
        "FAILED",
        "a repeated retry ran the job again"
    );
    assert_eq!(
        num(&s.db, &attempts),
        before,
        "a repeated retry made attempts"
    );
    let (code, body) = call(&s, "DELETE", &format!("{standby}/v1/jobs/{id}"), None);
    assert_eq!(code, 204, "{body}");
    assert_eq!(
        num(
            &s.db,
            &format!("SELECT count(*) FROM jobs WHERE id = '{id}'")
        ),
        0
    );
    let (code, body) = call(&s, "DELETE", &format!("{standby}/v1/jobs/{id}"), None);
    assert_eq!(code, 404, "{body}");

    // An environment deleted through the standby goes.
    let env = serde_json::json!({"name": "extra", "provider": "static"});
    let (code, body) = call(&s, "POST", &format!("{standby}/v1/compute-envs"), Some(env));
    assert_eq!(code, 201, "{body}");
    let (code, body) = call(
        &s,
        "DELETE",
        &format!("{standby}/v1/compute-envs/extra"),
        None,
    );
    assert_eq!(code, 204, "{body}");
    assert_eq!(
        num(
            &s.db,
            "SELECT count(*) FROM compute_envs WHERE name = 'extra'"
        ),
        0
    );

    // Every command was answered, none is left for a later leader.
    assert_eq!(
        num(
            &s.db,
            "SELECT count(*) FROM commands WHERE answered_at IS NULL"
        ),
        0
    );
    assert!(num(&s.db, "SELECT count(*) FROM commands") >= 6);

    // One template created on both servers at once: one 201, one 409.
    for round in 0..5 {
        let name = format!("race-{round}");
        let answers: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&leader, &standby]
                .into_iter()
                .map(|url| {
                    let (s, name) = (&s, &name);
                    scope.spawn(move || {
                        let t = serde_json::json!({"name": name, "task": {"command": "true"}});
                        call(s, "POST", &format!("{url}/v1/task-templates"), Some(t)).0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = answers.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [201, 409], "round {round}: {answers:?}");
    }

    // No leader for a moment: a terminate the standby takes then is acted on by whoever
    // leads next (here the standby itself, once the dead leader's lease expires).
    let id = s.submit(&standby, &spec);
    wait_until(60, "the new job to run", || {
        num(
            &s.db,
            &format!(
                "SELECT count(*) FROM instances i JOIN jobs j ON j.seq = i.job
                 WHERE j.id = '{id}' AND i.state = 'RUNNING'"
            ),
        ) == 2
    });
    s.servers[0].kill();
    let (code, body) = call(
        &s,
        "POST",
        &format!("{standby}/v1/jobs/{id}/terminate"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(role(&standby).as_deref(), Some("leader"));
    wait_until(60, "the job to fail after the failover", || {
        s.job_state(&id) == "FAILED"
    });
}
