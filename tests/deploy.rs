//! What `deploy/` ships, checked with the tools its users run: the
//! Kubernetes overlays rendered by `kubectl kustomize` and validated by
//! `kubernetes-validate` (core objects) and against the vendored CRD
//! schemas (cert-manager, Prometheus Operator); the alert rules by
//! `promtool`, and by a real Prometheus scraping a live stagegate; the
//! Grafana dashboard's metric names against a live `/metrics`; the image
//! (`just image`) through a real registry, started from its own root
//! filesystem; and `docs/deploy.md`, whose commands are run as written.
//!
//! The tools come from Debian (`prometheus`, `skopeo`, `buildah`,
//! `docker-registry`), PyPI (`kubernetes-validate`, `PyYAML`,
//! `jsonschema`) and the machine (`kubectl`), installed by `.ci/run`. A
//! missing tool skips the test with a message here and fails it under CI.

use crate::support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::server::{Deployment, Server, send};

/// The Kubernetes version the core objects are validated against: one
/// that EKS, GKE and AKS all offer.
const KUBERNETES: &str = "1.33.0";

/// Whether `tool` can be run (skipped and listed when not; a failure
/// under CI). `install` says where it comes from, for the reader.
fn require_tool(tool: &str, _install: &str) -> bool {
    support::require_tool(tool)
}

/// Runs `program args` in `cwd`; panics with its output unless it
/// succeeds. Returns stdout.
fn run_ok(cwd: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every document of a YAML stream, as JSON (PyYAML).
fn yaml_documents(text: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML could not read:\n{text}");
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("{other}"),
    }
}

fn yaml_file(path: &Path) -> Vec<Value> {
    yaml_documents(&std::fs::read_to_string(path).unwrap())
}

/// `kubectl kustomize` of an overlay (or the base): the objects.
fn render(overlay: &str) -> (String, Vec<Value>) {
    let dir = support::root().join("deploy/kubernetes").join(overlay);
    let text = run_ok(&dir, "kubectl", &["kustomize", "."]);
    let docs = yaml_documents(&text);
    (text, docs)
}

fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered overlay"))
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the rendered overlay"))
}

/// `kubernetes-validate --strict` of a YAML stream: Ok, or its output.
fn kubernetes_validate(yaml: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn", "-k", KUBERNETES])
        .arg(&file)
        .output()
        .expect("kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn kubernetes_tools() -> bool {
    require_tool(
        "kubectl",
        "the machine's kubectl; kubectl kustomize renders the overlays",
    ) && require_tool(
        "kubernetes-validate",
        "pip install kubernetes-validate==1.37.0",
    ) && require_tool("python3", "apt-get install python3-yaml")
}

const CORE_KINDS: [&str; 9] = [
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ValidatingWebhookConfiguration",
    "PersistentVolumeClaim",
];

#[test]
fn both_overlays_render_and_every_core_object_validates_against_kubernetes() {
    if !kubernetes_tools() {
        return;
    }
    for overlay in ["overlays/single", "overlays/ha"] {
        let (text, docs) = render(overlay);
        let out = kubernetes_validate(&text).unwrap_or_else(|e| panic!("{overlay}: {e}"));
        for d in &docs {
            let kind = d["kind"].as_str().unwrap();
            if CORE_KINDS.contains(&kind) {
                let name = d["metadata"]["name"].as_str().unwrap();
                assert!(
                    out.contains(&format!(
                        "passed for resource {}/{name}",
                        kind.to_lowercase()
                    )),
                    "{overlay}: {kind} {name} was not validated:\n{out}"
                );
            }
        }
        // Secret values are never part of the manifests: only references.
        assert!(
            !docs.iter().any(|d| d["kind"] == "Secret"),
            "{overlay} holds a Secret"
        );
    }
    // The validator refuses what Kubernetes would: a misspelt field.
    let (text, _) = render("overlays/single");
    let broken = text.replacen("readOnlyRootFilesystem", "readOnlyRootFileSystem", 1);
    let e = kubernetes_validate(&broken).expect_err("a misspelt field must not validate");
    assert!(e.contains("readOnlyRootFileSystem"), "{e}");
}

#[test]
fn the_rendered_objects_are_hardened_probed_spread_and_wired_to_each_other() {
    if !kubernetes_tools() {
        return;
    }
    for (overlay, replicas) in [("overlays/single", 1), ("overlays/ha", 3)] {
        let (_, docs) = render(overlay);
        let all: Vec<&Value> = docs.iter().collect();
        for d in &all {
            if d["kind"] != "Namespace" && d["kind"] != "ValidatingWebhookConfiguration" {
                assert_eq!(d["metadata"]["namespace"], "stagegate", "{d}");
            }
        }
        let deployment = object(&docs, "Deployment", "stagegate");
        assert_eq!(deployment["spec"]["replicas"], replicas, "{overlay}");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert!(
            pod["topologySpreadConstraints"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        );
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert!(c["readinessProbe"]["failureThreshold"].is_u64());
        assert!(c["livenessProbe"]["failureThreshold"].is_u64());
        assert!(c["resources"]["requests"]["memory"].is_string());
        assert!(c["resources"]["limits"]["memory"].is_string());
        // The configuration is the generated ConfigMap, and it is a valid
        // stagegate configuration.
        let config_map = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "config")
            .unwrap()["configMap"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(config_map.starts_with("stagegate-config-"), "{config_map}");
        let toml = object(&docs, "ConfigMap", &config_map)["data"]["stagegate.toml"]
            .as_str()
            .unwrap();
        let config = stagegate::config::Config::parse(toml)
            .unwrap_or_else(|e| panic!("{overlay}: stagegate.toml: {e}"));
        assert!(!config.integrations.kubernetes.require_token);
        assert_eq!(
            config.tls.certificate.as_deref(),
            Some(Path::new("/etc/stagegate/tls/tls.crt"))
        );
        // Every Secret the pod reads is one the Certificate writes or the
        // operator creates; no value is inline.
        let secrets: BTreeSet<String> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_string))
            .collect();
        let certificate = object(&docs, "Certificate", "stagegate");
        assert!(secrets.contains(certificate["spec"]["secretName"].as_str().unwrap()));
        for e in c["env"].as_array().unwrap() {
            assert!(
                e.get("valueFrom").is_some() || e["name"] == "RUST_LOG",
                "{e}"
            );
        }
        match overlay {
            "overlays/single" => {
                assert!(
                    config
                        .database_url()
                        .starts_with("sqlite:///var/lib/stagegate/")
                );
                let pvc = kind(&docs, "PersistentVolumeClaim");
                let data = pod["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == "data")
                    .unwrap();
                assert_eq!(
                    data["persistentVolumeClaim"]["claimName"],
                    pvc["metadata"]["name"]
                );
                assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
            }
            _ => {
                assert!(config.database_url().starts_with("postgres://"));
                let url = config.database_url();
                let user = url["postgres://".len()..].split('@').next().unwrap();
                assert!(!user.contains(':'), "a password in the URL: {url}");
                let pg = c["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == "PGPASSWORD")
                    .expect("PGPASSWORD from a Secret");
                assert_eq!(
                    pg["valueFrom"]["secretKeyRef"]["name"],
                    "stagegate-postgres"
                );
                assert!(secrets.contains("stagegate-keys"));
                assert!(
                    !docs.iter().any(|d| d["kind"] == "PersistentVolumeClaim"),
                    "ha keeps its records in PostgreSQL"
                );
            }
        }
        // Service: HTTP and HTTPS, selecting the pods.
        let service = object(&docs, "Service", "stagegate");
        let ports: Vec<(String, u64)> = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            vec![("http".to_string(), 8080), ("https".to_string(), 8443)]
        );
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (k, v) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&pod_labels[k], v, "the Service selects the pods");
        }
        assert!(
            object(&docs, "PodDisruptionBudget", "stagegate")["spec"]["selector"]["matchLabels"]
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &pod_labels[k] == v)
        );
        // The webhook: the Service's HTTPS port, the CA injected from the
        // Certificate, governed namespaces only, no side effects, closed.
        let webhook = object(&docs, "ValidatingWebhookConfiguration", "stagegate");
        assert_eq!(
            webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "stagegate/stagegate"
        );
        let hook = &webhook["webhooks"][0];
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["failurePolicy"], "Fail");
        assert!(hook["timeoutSeconds"].as_u64().is_some_and(|t| t <= 10));
        assert_eq!(
            hook["namespaceSelector"]["matchLabels"]["stagegate.dev/governed"],
            "true"
        );
        assert_eq!(
            hook["clientConfig"]["service"],
            json!({"namespace": "stagegate", "name": "stagegate", "port": 8443,
                "path": "/v1/integrations/kubernetes/admission"})
        );
        let dns: Vec<&str> = certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert!(dns.contains(&"stagegate.stagegate.svc"), "{dns:?}");
        // The ServiceMonitor scrapes the Service's http port.
        let monitor = kind(&docs, "ServiceMonitor");
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
        for (k, v) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(&service["metadata"]["labels"][k], v);
        }
    }
}

/// Validates `object` against the `openAPIV3Schema` of its version in
/// the CRD file `crd` (jsonschema): Ok, or the errors.
fn crd_validate(crd: &str, object: &Value) -> Result<(), String> {
    let file = support::root().join("deploy/crds").join(crd);
    let script = r#"
import json, sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
obj = json.load(sys.stdin)
version = obj["apiVersion"].split("/")[1]
assert crd["spec"]["names"]["kind"] == obj["kind"], (crd["spec"]["names"]["kind"], obj["kind"])
schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
for e in errors:
    print("/".join(str(p) for p in e.path) + ": " + e.message)
sys.exit(1 if errors else 0)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn the_custom_resources_validate_against_the_vendored_crd_schemas() {
    if !kubernetes_tools() {
        return;
    }
    for overlay in ["overlays/single", "overlays/ha"] {
        let (_, docs) = render(overlay);
        for (kind_name, crd) in [
            ("Certificate", "cert-manager.io_certificates.yaml"),
            (
                "ServiceMonitor",
                "monitoring.coreos.com_servicemonitors.yaml",
            ),
            (
                "PrometheusRule",
                "monitoring.coreos.com_prometheusrules.yaml",
            ),
        ] {
            let o = kind(&docs, kind_name);
            crd_validate(crd, o).unwrap_or_else(|e| panic!("{overlay} {kind_name}: {e}"));
        }
    }
    // The schemas refuse what the controllers would.
    let (_, docs) = render("overlays/single");
    let mut bad = kind(&docs, "Certificate").clone();
    bad["spec"]["dnsNames"] = json!("stagegate.stagegate.svc");
    bad["spec"]["issuerRef"] = json!({"kind": "Issuer"});
    let e = crd_validate("cert-manager.io_certificates.yaml", &bad).unwrap_err();
    assert!(
        e.contains("spec/dnsNames") && e.contains("'name' is a required property"),
        "{e}"
    );
    let mut bad = kind(&docs, "ServiceMonitor").clone();
    bad["spec"]["endpoints"][0]["interval"] = json!("thirty seconds");
    let e = crd_validate("monitoring.coreos.com_servicemonitors.yaml", &bad).unwrap_err();
    assert!(e.contains("endpoints/0/interval"), "{e}");
}

#[test]
fn the_prometheus_rule_object_holds_exactly_the_rules_file() {
    if !kubernetes_tools() {
        return;
    }
    let root = support::root();
    let rules = yaml_file(&root.join("deploy/prometheus/rules.yml"));
    let object = yaml_file(&root.join("deploy/kubernetes/base/prometheusrule.yaml"));
    assert_eq!(
        rules[0]["groups"], object[0]["spec"]["groups"],
        "deploy/kubernetes/base/prometheusrule.yaml differs from deploy/prometheus/rules.yml"
    );
}

#[test]
fn the_examples_call_the_service_of_the_base() {
    if !kubernetes_tools() {
        return;
    }
    let (_, docs) = render("overlays/single");
    let service = object(&docs, "Service", "stagegate");
    let host = format!(
        "{}.{}.svc",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap()
    );
    let port = |name: &str| {
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["port"]
            .as_u64()
            .unwrap()
    };
    let http = format!("http://{host}:{}/", port("http"));
    let root = support::root();
    for example in [
        "examples/argo-rollouts/analysis-templates.yaml",
        "examples/flagger/canary.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(example)).unwrap();
        let urls: Vec<&str> = text
            .split_whitespace()
            .map(|w| w.trim_matches('"'))
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .collect();
        assert!(!urls.is_empty(), "{example}");
        for url in urls {
            assert!(url.starts_with(&http), "{example}: {url} is not {http}");
        }
    }
    let webhook = yaml_file(&root.join("examples/kubernetes/validating-webhook.yaml"));
    let service_ref = &webhook[0]["webhooks"][0]["clientConfig"]["service"];
    assert_eq!(service_ref["name"], service["metadata"]["name"]);
    assert_eq!(service_ref["namespace"], service["metadata"]["namespace"]);
    assert_eq!(service_ref["port"], port("https"));
    let kubeconfig =
        std::fs::read_to_string(root.join("examples/kubernetes/apiserver-admission.yaml")).unwrap();
    assert!(
        kubeconfig.contains(&format!("{host}:{}", port("https"))),
        "examples/kubernetes/apiserver-admission.yaml names another service"
    );
}

// ---------------------------------------------------------------- Prometheus

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    if !require_tool("promtool", "apt-get install prometheus") {
        return;
    }
    let dir = support::root().join("deploy/prometheus");
    let out = run_ok(&dir, "promtool", &["check", "rules", "rules.yml"]);
    assert!(out.contains("SUCCESS: 9 rules found"), "{out}");
    let out = run_ok(&dir, "promtool", &["test", "rules", "tests.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    // The unit tests can fail: an alert made to fire earlier than its
    // expectation is caught.
    let scratch = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(dir.join("rules.yml")).unwrap();
    let earlier = rules.replace("for: 15m", "for: 5m");
    assert_ne!(earlier, rules);
    std::fs::write(scratch.path().join("rules.yml"), earlier).unwrap();
    std::fs::copy(dir.join("tests.yml"), scratch.path().join("tests.yml")).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "tests.yml"])
        .current_dir(scratch.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a changed threshold went unnoticed");
}

/// Every `stagegate_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("stagegate_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// The metric families a `/metrics` page declares, with their types.
fn declared(metrics: &str) -> Vec<(String, String)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect()
}

/// Whether the sample name `name` belongs to a declared family.
fn exported(families: &[(String, String)], name: &str) -> bool {
    families.iter().any(|(family, kind)| {
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        suffixes.iter().any(|s| name == format!("{family}{s}"))
    })
}

/// A one-file HTTP server for a bundle source; stops on drop (then the
/// port refuses connections).
struct BundleServer {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BundleServer {
    fn start(body: Vec<u8>) -> BundleServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\netag: \"v1\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes());
                        let _ = s.write_all(&body);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        BundleServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BundleServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A live stagegate whose default bundle comes from an HTTP source, with
/// a TLS listener (so the admission and exposure metrics exist), a
/// checkpoint signed and one admission review answered.
fn live_stagegate(source: &BundleServer, d: &Deployment) -> Server {
    let config = std::fs::read_to_string(d.config()).unwrap();
    std::fs::write(
        d.config(),
        format!(
            "{config}\n[records]\ncheckpoint_interval_ms = 200\n[[bundles]]\nname = \"iso42001-reference\"\ndefault = true\nurl = \"http://{}/iso42001.bundle\"\npoll_interval_ms = 200\nstale_after_ms = 1000\n[sources]\nmax_backoff_ms = 400\n",
            source.addr
        ),
    )
    .unwrap();
    let s = d.start();
    support::wait_until("the HTTP bundle active", Duration::from_secs(60), || {
        s.get("/readyz", None).status == 200
    });
    s
}

#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_on_a_live_metrics_page() {
    let d = Deployment::new("");
    let source = BundleServer::start(d.reference("1.0.0"));
    let s = live_stagegate(&source, &d);
    // A decision, so that the log moves and a checkpoint gets signed.
    let r = s.post_json("/v1/decisions/gate", None, &support::high_risk_gate());
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.send("GET", "/v1/log/checkpoint", None, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    // The route serves the newest checkpoint while it is younger than
    // `records.checkpoint_max_age_ms`; the schedule (every 200 ms here)
    // signs one that covers the decision.
    support::wait_until("a checkpoint covering the decision", support::HANG, || {
        s.get("/metrics", None).body.lines().any(|l| {
            l.strip_prefix("stagegate_log_checkpoint_size ")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|v| v >= 1.0)
        })
    });
    let metrics = s.get("/metrics", None).body;
    let families = declared(&metrics);
    let root = support::root();
    let mut used = BTreeSet::new();
    for file in [
        "deploy/prometheus/rules.yml",
        "deploy/grafana/stagegate.json",
    ] {
        let names = metric_names(&std::fs::read_to_string(root.join(file)).unwrap());
        assert!(names.len() >= 8, "{file}: {names:?}");
        for name in &names {
            assert!(
                exported(&families, name),
                "{file} uses {name}, which /metrics does not export:\n{metrics}"
            );
        }
        used.extend(names);
    }
    // The new background-work metrics carry values, not just declarations.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} has no sample:\n{metrics}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(value("stagegate_log_checkpoint_size") >= 1.0);
    assert!((now - value("stagegate_log_checkpoint_timestamp_seconds")).abs() < 600.0);
    assert!((now - value("stagegate_exposure_table_refresh_timestamp_seconds")).abs() < 600.0);
    // A name that does not exist is caught.
    assert!(!exported(&families, "stagegate_no_such_metric_total"));
    eprintln!(
        "{} metric names used by the rules and the dashboard, all exported",
        used.len()
    );
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process killed when dropped, with its process group when it leads
/// one: the image's server runs under `unshare`, and `chroot --userspec`
/// changes its credentials, which clears the parent-death signal that
/// `--kill-child` set, so killing `unshare` alone would leave it serving.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_fires_the_stale_source_alert_when_the_http_source_stops() {
    if !require_tool("prometheus", "apt-get install prometheus") {
        return;
    }
    let d = Deployment::new("");
    let mut source = BundleServer::start(d.reference("1.0.0"));
    let s = live_stagegate(&source, &d);

    let dir = tempfile::tempdir().unwrap();
    let rules = support::root().join("deploy/prometheus/rules.yml");
    let port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: stagegate\n    static_configs:\n      - targets: ['{}']\n",
            rules.display(),
            s.addr
        ),
    )
    .unwrap();
    let _prometheus = Process(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    let api = |path: &str| -> Value {
        let r = send(
            &format!("http://127.0.0.1:{port}{path}"),
            "GET",
            None,
            None,
            None,
        );
        if r.status != 200 {
            return Value::Null;
        }
        r.json()
    };
    let alert_state = || -> Option<String> {
        api("/api/v1/alerts")["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "StagegateBundleSourceStale")
            .map(|a| a["state"].as_str().unwrap_or_default().to_string())
    };
    // Prometheus scrapes stagegate and loads the rules; nothing fires
    // while the source answers.
    support::wait_until(
        "Prometheus scraping stagegate",
        Duration::from_secs(60),
        || {
            api("/api/v1/targets")["data"]["activeTargets"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["health"] == "up"))
        },
    );
    support::wait_until(
        "a stale flag of 0 in Prometheus",
        Duration::from_secs(60),
        || {
            api("/api/v1/query?query=stagegate_bundle_source_stale")["data"]["result"]
                .as_array()
                .is_some_and(|r| r.iter().any(|s| s["value"][1] == "0"))
        },
    );
    let groups = api("/api/v1/rules")["data"]["groups"].clone();
    assert_eq!(
        groups[0]["rules"].as_array().map(Vec::len),
        Some(9),
        "{groups:#}"
    );
    assert_eq!(alert_state(), None, "an alert before the source stopped");

    source.stop();
    support::wait_until(
        "StagegateBundleSourceStale firing in Prometheus",
        Duration::from_secs(120),
        || alert_state().as_deref() == Some("firing"),
    );
    let alerts = api("/api/v1/alerts");
    let alert = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "StagegateBundleSourceStale")
        .unwrap()
        .clone();
    assert_eq!(alert["labels"]["bundle"], "iso42001-reference", "{alert:#}");
    assert_eq!(alert["labels"]["instance"], s.addr.as_str(), "{alert:#}");
    // Decisions go on from the active version meanwhile.
    let r = s.post_json("/v1/decisions/gate", None, &support::high_risk_gate());
    assert_eq!(r.status, 200, "{}", r.body);
}

// --------------------------------------------------------------------- image

/// The image `just image` wrote, or None (skipped; a failure under CI).
fn image_archive() -> Option<PathBuf> {
    let path = support::root().join("target/image/stagegate.oci.tar");
    support::require("the image (just image)", || {
        if path.exists() {
            Ok(())
        } else {
            Err(format!("{} is missing: run `just image`", path.display()))
        }
    })
    .then_some(path)
}

/// Unpacks the layers of the OCI layout `layout` (tag `tag`) into `rootfs`.
fn unpack(layout: &Path, rootfs: &Path) -> Value {
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(rootfs).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let file = blob(layer["digest"].as_str().unwrap());
        run_ok(
            rootfs,
            "tar",
            &[
                "--same-owner",
                "-xpf",
                file.to_str().unwrap(),
                "-C",
                rootfs.to_str().unwrap(),
            ],
        );
    }
    manifest
}

/// Every file path under `root`, relative, with its mode and owner.
fn tree(root: &Path) -> Vec<(String, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            out.push((rel, m.mode(), m.uid()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A configuration directory for the image: the reference bundle, its
/// trust key and a config listening on `port`; readable by anyone.
fn image_config(d: &Deployment, port: u16) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("trust")).unwrap();
    std::fs::copy(d.path("trust/dev.pub"), dir.path().join("trust/dev.pub")).unwrap();
    std::fs::write(dir.path().join("ref.bundle"), d.reference("1.0.0")).unwrap();
    std::fs::write(
        dir.path().join("stagegate.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"/var/lib/stagegate\"\nlog_format = \"json\"\n[trust]\ndir = \"/etc/stagegate/trust\"\n[[bundles]]\nname = \"iso42001-reference\"\nfile = \"/etc/stagegate/ref.bundle\"\ndefault = true\n"
        ),
    )
    .unwrap();
    for p in [dir.path().to_path_buf(), dir.path().join("trust")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in ["trust/dev.pub", "ref.bundle", "stagegate.toml"] {
        std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    dir
}

/// Waits for `/readyz` on `port` and asks for a gate decision.
fn ready_and_deciding(port: u16, logs: &dyn Fn() -> String) -> Value {
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = send(&url("/readyz"), "GET", None, None, None);
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never answered 200 (last: {} {}); logs:\n{}",
            r.status,
            r.body,
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = serde_json::to_vec(&support::high_risk_gate()).unwrap();
    let r = send(
        &url("/v1/decisions/gate"),
        "POST",
        None,
        Some("application/json"),
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn the_image_goes_through_a_registry_and_runs_from_its_own_root_as_a_non_root_user() {
    let Some(archive) = image_archive() else {
        return;
    };
    if !require_tool("skopeo", "apt-get install skopeo")
        || !require_tool("unshare", "apt-get install util-linux")
    {
        return;
    }
    let Some(registry) = support::oci_registry::Registry::start() else {
        return;
    };
    let size = std::fs::metadata(&archive).unwrap().len();
    let reference = format!("docker://{}/stagegate:test", registry.addr);
    let cwd = support::root();
    run_ok(
        &cwd,
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci-archive:{}", archive.display()),
            &reference,
        ],
    );
    // The image as the registry serves it.
    let config: Value = serde_json::from_str(&run_ok(
        &cwd,
        "skopeo",
        &["inspect", "--tls-verify=false", "--config", &reference],
    ))
    .unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "{config:#}");
    assert_eq!(
        c["Entrypoint"],
        json!([
            "/usr/local/bin/stagegate",
            "serve",
            "--config",
            "/etc/stagegate/stagegate.toml"
        ])
    );
    assert!(c["Volumes"]["/var/lib/stagegate"].is_object(), "{config:#}");
    let labels = c["Labels"].as_object().unwrap();
    for label in [
        "title",
        "version",
        "revision",
        "created",
        "licenses",
        "description",
    ] {
        let key = format!("org.opencontainers.image.{label}");
        assert!(
            labels
                .get(&key)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty()),
            "{key} missing: {labels:?}"
        );
    }
    assert_eq!(labels["org.opencontainers.image.title"], "stagegate");

    // Pulled back and unpacked: a binary, CA certificates, the user's
    // files and the data volume; nothing to run a shell with.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    run_ok(
        &cwd,
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &reference,
            &format!("oci:{}:test", layout.display()),
        ],
    );
    let rootfs = work.path().join("rootfs");
    unpack(&layout, &rootfs);
    let files = tree(&rootfs);
    let names: Vec<&str> = files.iter().map(|(p, _, _)| p.as_str()).collect();
    for shell in ["sh", "bash", "ash", "dash", "busybox", "zsh"] {
        assert!(
            !names.iter().any(|p| p.rsplit('/').next() == Some(shell)),
            "a shell in the image: {names:?}"
        );
    }
    for needed in [
        "usr/local/bin/stagegate",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "var/lib/stagegate",
    ] {
        assert!(names.contains(&needed), "{needed} missing: {names:?}");
    }
    let data = files
        .iter()
        .find(|(p, _, _)| p == "var/lib/stagegate")
        .unwrap();
    assert_eq!(data.2, 65532, "the data volume belongs to the image's user");
    let unpacked: u64 = files
        .iter()
        .map(|(p, _, _)| std::fs::symlink_metadata(rootfs.join(p)).unwrap().len())
        .sum();
    eprintln!(
        "image: {} files, archive {:.1} MiB, unpacked {:.1} MiB",
        files.len(),
        size as f64 / 1048576.0,
        unpacked as f64 / 1048576.0
    );

    // Started from that root, read-only, as its user, with the
    // configuration and the data volume mounted in.
    let d = Deployment::new("");
    let port = free_port();
    let config_dir = image_config(&d, port);
    let data_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data_dir.path(), Some(65532), Some(65532)).unwrap();
    std::fs::create_dir_all(rootfs.join("etc/stagegate")).unwrap();
    let entrypoint: Vec<String> = c["Entrypoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let r = rootfs.display().to_string();
    let script = format!(
        "set -e; mount --bind {r} {r}; mount --bind {cfg} {r}/etc/stagegate; mount --bind {data} {r}/var/lib/stagegate; mount -o remount,bind,ro {r}; cd /; exec chroot --userspec=65532:65532 {r} {cmd}",
        cfg = config_dir.path().display(),
        data = data_dir.path().display(),
        cmd = entrypoint.join(" ")
    );
    let mut child = Command::new("unshare")
        .args(["--mount", "--fork", "--kill-child", "sh", "-c", &script])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut s = String::new();
        let mut r = std::io::BufReader::new(stderr);
        while std::io::BufRead::read_line(&mut r, &mut s).is_ok_and(|n| n > 0) {
            sink.lock().unwrap().push_str(&s);
            s.clear();
        }
    });
    let _server = Process(child);
    let decision = ready_and_deciding(port, &|| logs.lock().unwrap().clone());
    assert_eq!(decision["decision"], "gate", "{decision:#}");
    assert_eq!(decision["policy"]["bundle"], "iso42001-reference");
    // It wrote its records into the volume, not the image.
    assert!(data_dir.path().join("stagegate.db").exists());
    drop(_server);

    // podman, where this machine allows it: report what happens.
    if Command::new("podman").arg("--version").output().is_ok() {
        let port = free_port();
        let config_dir = image_config(&d, port);
        let out = Command::new("podman")
            .args([
                "run",
                "--rm",
                "-d",
                "--network",
                "host",
                "--read-only",
                "--cgroups=disabled",
            ])
            .arg("-v")
            .arg(format!("{}:/etc/stagegate:ro", config_dir.path().display()))
            .arg(format!("oci-archive:{}", archive.display()))
            .output()
            .unwrap();
        if out.status.success() {
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let decision = ready_and_deciding(port, &|| String::new());
            let _ = Command::new("podman").args(["rm", "-f", &id]).output();
            assert_eq!(decision["decision"], "gate", "{decision:#}");
            eprintln!("podman run: the image answered /readyz and a gate");
        } else {
            eprintln!(
                "podman run could not start the image here: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
        }
    }
}

// ---------------------------------------------------------------------- docs

/// The fenced `sh` blocks of a Markdown file, each with whether it is
/// marked as needing a cluster (first line `# on the cluster`).
fn shell_blocks(markdown: &str) -> Vec<(bool, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```sh" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                let cluster = block.starts_with("# on the cluster");
                blocks.push((cluster, std::mem::take(block)));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn the_commands_of_docs_deploy_md_run_as_written() {
    if !kubernetes_tools() || !require_tool("skopeo", "apt-get install skopeo") {
        return;
    }
    let Some(_) = image_archive() else {
        return;
    };
    let Some(registry) = support::oci_registry::Registry::start() else {
        return;
    };
    let root = support::root();
    let markdown = std::fs::read_to_string(root.join("docs/deploy.md")).unwrap();
    let blocks = shell_blocks(&markdown);
    let offline: Vec<&String> = blocks.iter().filter(|(c, _)| !c).map(|(_, b)| b).collect();
    assert!(offline.len() >= 4, "{blocks:?}");
    // A copy of the repository's files the commands read and write.
    let work = tempfile::tempdir().unwrap();
    for dir in ["deploy", "policies"] {
        run_ok(&root, "cp", &["-r", dir, work.path().to_str().unwrap()]);
    }
    std::fs::create_dir_all(work.path().join("target/image")).unwrap();
    std::fs::copy(
        root.join("target/image/stagegate.oci.tar"),
        work.path().join("target/image/stagegate.oci.tar"),
    )
    .unwrap();
    // `just image` is run by CI before the tests; here the image it built
    // stands in (the recipe is `deploy/image/build.sh`).
    // The test registry speaks plain HTTP, which skopeo refuses by
    // default (skopeo 1.9 takes no `insecure` from registries.conf for a
    // push): a wrapper adds --dest-tls-verify=false to `skopeo copy`, the
    // one change to the commands as written.
    let shims = work.path().join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    let skopeo = run_ok(&root, "sh", &["-c", "command -v skopeo"]);
    let shim = shims.join("skopeo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nif [ \"$1\" = copy ]; then shift; exec {s} copy --dest-tls-verify=false \"$@\"; fi\nexec {s} \"$@\"\n",
            s = skopeo.trim()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin_dir = support::bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}:{}",
        shims.display(),
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script: String = offline
        .iter()
        .map(|b| b.as_str())
        .collect::<Vec<_>>()
        .join("\n")
        .lines()
        .filter(|l| l.trim() != "just image")
        .collect::<Vec<_>>()
        .join("\n");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .env("REGISTRY", format!("{}/platform", registry.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docs/deploy.md's commands failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What they made: a rendered overlay with the pushed image and the
    // tokens, valid for Kubernetes; the trust ConfigMap and key Secret.
    let rendered = std::fs::read_to_string(work.path().join("stagegate.yaml")).unwrap();
    kubernetes_validate(&rendered).unwrap();
    let docs = yaml_documents(&rendered);
    let deployment = object(&docs, "Deployment", "stagegate");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{}/platform/stagegate:0.1.0", registry.addr)
    );
    let config_map = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let config =
        stagegate::config::Config::parse(config_map["data"]["stagegate.toml"].as_str().unwrap())
            .unwrap();
    let holders: BTreeSet<&str> = config.tokens.iter().map(|t| t.name.as_str()).collect();
    assert!(
        holders.contains("ci") && holders.contains("publisher"),
        "{holders:?}"
    );
    let trust = std::fs::read_to_string(work.path().join("trust.yaml")).unwrap();
    kubernetes_validate(&trust).unwrap_or_else(|e| panic!("trust.yaml: {e}"));
    let pushed = run_ok(
        &root,
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/platform/stagegate:0.1.0", registry.addr),
        ],
    );
    assert!(
        pushed.contains("org.opencontainers.image.title"),
        "{pushed}"
    );
}
