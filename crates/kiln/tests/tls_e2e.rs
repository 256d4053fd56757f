//! End-to-end tests of TLS: a CA and a server certificate made in the test (rcgen), a real
//! `kiln server --tls-cert --tls-key` on loopback, and every kind of client over `https://`:
//! the CLI, a `kiln agent`, the agents of a `local` environment, and (on the real Docker Engine)
//! the node containers of a `docker` environment. A client without the CA is refused, and the
//! server refuses unusable certificate files before it starts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use support::{Cluster, Proc, ServerOptions, env_nodes, free_port, kiln_bin, path, state};

/// A test CA and a server certificate it signed, as PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// A key of another certificate (not `cert`'s).
    other_key: PathBuf,
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A CA, and a certificate it signed for the names clients and nodes use: loopback for the
/// CLI, agents and `local` environments, `host.docker.internal` for node containers.
fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Kiln test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "host.docker.internal".to_string(),
    ])
    .unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "kiln server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &*ca).unwrap();
    let other = KeyPair::generate().unwrap();

    let p = |name: &str| dir.path().join(name);
    std::fs::write(p("ca.pem"), ca.pem()).unwrap();
    std::fs::write(p("server.pem"), cert.pem()).unwrap();
    write_private(&p("server.key"), &key.serialize_pem());
    write_private(&p("other.key"), &other.serialize_pem());
    Pki {
        ca: p("ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
        other_key: p("other.key"),
        _dir: dir,
    }
}

/// Server options for HTTPS with `pki`'s certificate, giving nodes it starts the CA.
fn tls_options(pki: &Pki) -> ServerOptions {
    ServerOptions {
        args: vec![
            "--tls-cert".into(),
            pki.cert.display().to_string(),
            "--tls-key".into(),
            pki.key.display().to_string(),
            "--ca-file".into(),
            pki.ca.display().to_string(),
        ],
        ca_file: Some(pki.ca.clone()),
        ..ServerOptions::default()
    }
}

/// Runs the kiln CLI with `args`; returns (exit code, stdout, stderr).
fn kiln(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(kiln_bin())
        .args(args)
        .env_remove("KILN_CA_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn succeeded(c: &Cluster, name: &str, spec: &str) -> serde_json::Value {
    let file = c.spec(&format!("{name}.yaml"), spec);
    let id = c.submit(&file);
    let job = c.wait_job(&id, 90, |v| {
        matches!(state(v), "SUCCEED" | "FAILED" | "TERMINATED")
    });
    assert_eq!(state(&job), "SUCCEED", "{job}");
    job
}

#[test]
fn the_cli_agents_and_local_environment_nodes_work_over_https_and_a_client_without_the_ca_is_refused()
 {
    let pki = make_pki();
    let mut c = Cluster::with_options(tls_options(&pki));
    assert!(c.url().starts_with("https://"));

    // The CLI with --ca-file: submit, show, list.
    succeeded(
        &c,
        "builtin",
        "name: builtin\ntasks:\n  hello:\n    command: echo over-tls\n",
    );
    let (code, out, err) = c.run(&["jobs"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("builtin"), "{out}");

    // An agent started by hand, joining over https.
    c.start_agent("secure", 2);
    let job = succeeded(
        &c,
        "on-agent",
        "name: on-agent\ntasks:\n  work:\n    instances: 2\n    compute_env: pool\n    \
         command: echo $BATCH_NODE_ID\n",
    );
    let id = job["id"].as_str().unwrap();
    let (code, out, err) = c.run(&["logs", id, "work", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.trim().ends_with("secure"), "{out}");

    // Agents the server starts for a `local` environment get its URL and CA.
    let env = c.spec(
        "local.yaml",
        "name: elastic\nprovider: local\ndesired_nodes: 1\nslots: 1\n",
    );
    let (code, out, err) = c.run(&["env", "create", path(&env)]);
    assert_eq!(code, 0, "{out}{err}");
    succeeded(
        &c,
        "on-local",
        "name: on-local\ntasks:\n  work:\n    compute_env: elastic\n    command: 'true'\n",
    );
    assert!(
        env_nodes(&c, "elastic")
            .iter()
            .any(|n| n["state"] == "RUNNING"),
        "the local environment's node runs"
    );
    // Its agent leaves before the server goes (a killed server would leave it behind).
    let (code, out, err) = c.run(&["env", "scale", "elastic", "--desired", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    support::wait_until(60, "the local node to drain and leave", || {
        env_nodes(&c, "elastic").is_empty()
    });

    // A client without the CA: refused, saying what to do, and nothing is sent.
    let token = c.data().join("admin-token");
    let (code, out, err) = kiln(&["jobs", "--server", &c.url(), "--token-file", path(&token)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("not signed by a CA this client trusts") && err.contains("--ca-file"),
        "{err}"
    );
    // A client trusting another CA is refused the same way.
    let stranger = make_pki();
    let (code, _, err) = kiln(&[
        "jobs",
        "--server",
        &c.url(),
        "--token-file",
        path(&token),
        "--ca-file",
        path(&stranger.ca),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not signed by a CA this client trusts"),
        "{err}"
    );
    // Plain http:// to the TLS server does not get an answer either.
    let plain = c.url().replace("https://", "http://");
    let (code, _, err) = kiln(&["jobs", "--server", &plain, "--token-file", path(&token)]);
    assert_eq!(code, 1, "{err}");
    // An unreadable CA file is bad input.
    let (code, _, err) = kiln(&["jobs", "--server", &c.url(), "--ca-file", "no-such-ca.pem"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--ca-file") && err.contains("no-such-ca.pem"),
        "{err}"
    );

    // An agent without the CA never joins.
    let dir = c.dir.path().join("untrusting");
    let log = c.dir.path().join("untrusting.log");
    let _agent = Proc(
        Command::new(kiln_bin())
            .args(["agent", "--server", &c.url(), "--name", "untrusting"])
            .args(["--compute-env", "pool"])
            .arg("--token-file")
            .arg(c.data().join("agent-token"))
            .arg("--work-dir")
            .arg(&dir)
            .env_remove("KILN_CA_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    support::wait_until(30, "the untrusting agent to log the refusal", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("not signed by a CA this client trusts")
    });
    let nodes = c.json(&["nodes"]);
    assert!(
        !nodes.to_string().contains("untrusting"),
        "an agent without the CA is not a node: {nodes}"
    );
    c.kill_agent("secure");
}

/// Starts `kiln server` with `args` and returns the lines it logged until it listened or
/// exited, and its exit code if it exited.
fn start_server(dir: &Path, args: &[&str]) -> (Vec<String>, Option<i32>, Option<Proc>) {
    let mut child = Command::new(kiln_bin())
        .arg("server")
        .arg("--data-dir")
        .arg(dir.join("server"))
        .args(args)
        .env_remove("KILN_CA_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("server: {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let ready = line.contains("listening on");
                lines.push(line);
                if ready {
                    return (lines, None, Some(Proc(child)));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let code = child.wait().unwrap().code();
                return (lines, code, None);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the server neither started nor ended"),
        }
    }
}

#[test]
fn the_server_refuses_unusable_certificates_and_warns_when_it_serves_the_network_in_clear() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--tls-cert",
                path(&pki.cert),
                "--tls-key",
                path(&pki.other_key),
            ],
            "does not belong to --tls-cert",
        ),
        (
            &["--tls-cert", "missing.pem", "--tls-key", path(&pki.key)],
            "--tls-cert",
        ),
        (
            &["--tls-cert", path(&pki.key), "--tls-key", path(&pki.key)],
            "no PEM certificate",
        ),
        (&["--tls-cert", path(&pki.cert)], "--tls-key"),
        (
            &[
                "--tls-cert",
                path(&pki.cert),
                "--tls-key",
                path(&pki.key),
                "--advertise-url",
                "http://kiln.lan:7878",
            ],
            "must use a https:// URL",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["--listen", &listen];
        all.extend_from_slice(args);
        let (lines, code, server) = start_server(dir.path(), &all);
        assert!(server.is_none(), "started with {args:?}");
        assert_eq!(code, Some(2), "{args:?}: {lines:?}");
        let text = lines.join("\n");
        assert!(text.contains(says), "{args:?}: {text}");
        if args.contains(&"missing.pem") {
            // Made absolute at parse time, like every path.
            assert!(
                text.contains(&format!(
                    "{}/missing.pem",
                    std::env::current_dir().unwrap().display()
                )),
                "{text}"
            );
        }
    }
    assert!(
        !dir.path().join("server").exists(),
        "nothing was made before the check"
    );

    // On every address without TLS: a warning. On loopback, or with TLS: none.
    let everywhere = format!("0.0.0.0:{}", free_port());
    let (lines, _, server) = start_server(dir.path(), &["--listen", &everywhere]);
    assert!(server.is_some(), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("without TLS")), "{lines:?}");
    drop(server);
    let (lines, _, server) = start_server(
        dir.path(),
        &[
            "--listen",
            &format!("0.0.0.0:{}", free_port()),
            "--tls-cert",
            path(&pki.cert),
            "--tls-key",
            path(&pki.key),
        ],
    );
    assert!(server.is_some(), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("without TLS")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("listening on https://")),
        "{lines:?}"
    );
    drop(server);
    let (lines, _, server) = start_server(dir.path(), &["--listen", &listen]);
    assert!(server.is_some(), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("without TLS")),
        "{lines:?}"
    );
}

// ---- a `docker` environment's nodes over https (needs a Docker Engine) ----

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("this test needs the docker CLI and a Docker Engine: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Removes the environment's containers and network, whether the test passed or not.
struct Leftovers {
    env: String,
    network: String,
}

fn node_containers(env: &str) -> Vec<String> {
    let filter = format!("label=kiln.env={env}");
    let (_, out) = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=kiln.managed=true",
        "--filter",
        &filter,
        "--format",
        "{{.Names}}",
    ]);
    out.lines().map(str::to_string).collect()
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let names = node_containers(&self.env);
        if !names.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(names.iter().map(String::as_str));
            docker(&args);
        }
        docker(&["network", "rm", &self.network]);
    }
}

#[test]
fn docker_environment_nodes_join_over_https_with_the_ca_mounted_read_only() {
    let image = support::test_image();
    let pki = make_pki();
    let env = format!("tls{}x{:x}", std::process::id(), free_port());
    let network = format!("kiln-test-{env}");
    // The guard is dropped after the server, which would otherwise make new containers.
    let _guard = Leftovers {
        env: env.clone(),
        network: network.clone(),
    };
    let c = Cluster::with_options(ServerOptions {
        host: "0.0.0.0".into(),
        ..tls_options(&pki)
    });
    let file = c.spec(
        "env.yaml",
        &format!(
            "name: {env}\nprovider: docker\nimage: {image}\nnetwork: {network}\n\
             instance_type: S1.SMALL1\nslots: 1\ndesired_nodes: 1\n"
        ),
    );
    let (code, out, err) = c.run(&["env", "create", path(&file)]);
    assert_eq!(code, 0, "{out}{err}");
    let job = succeeded(
        &c,
        "in-docker",
        &format!(
            "name: in-docker\ntasks:\n  work:\n    compute_env: {env}\n    \
             command: echo $BATCH_NODE_ID\n"
        ),
    );
    let id = job["id"].as_str().unwrap();
    let (code, out, err) = c.run(&["logs", id, "work", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.trim().ends_with(&format!("{env}-1")), "{out}");

    // The node reached the server at https://host.docker.internal with the CA mounted
    // read-only, given by path on its command line.
    let (ok, out) = docker(&["inspect", &format!("kiln-node-{env}-1")]);
    assert!(ok, "{out}");
    let node: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone();
    let cmd: Vec<String> = serde_json::from_value(node["Config"]["Cmd"].clone()).unwrap();
    let at = |flag: &str| cmd[cmd.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert!(
        at("--server").starts_with("https://host.docker.internal:"),
        "{cmd:?}"
    );
    let ca_in_node = at("--ca-file");
    let mount = node["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == ca_in_node.as_str())
        .expect("the CA is mounted")
        .clone();
    assert_eq!(mount["RW"], false);
    assert_eq!(mount["Source"], path(&pki.ca));

    let (code, out, err) = c.run(&["env", "delete", &env]);
    assert_eq!(code, 0, "{out}{err}");
    support::wait_until(60, "the node containers to go", || {
        node_containers(&env).is_empty()
    });
}
