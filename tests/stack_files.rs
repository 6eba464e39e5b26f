//! The stack role's files, rendered on this machine with `stack_files_only` (no Docker):
//! bramble and ansible-playbook write the same bytes; promtool accepts Prometheus's file;
//! Grafana's provisioning, alerting and dashboard files and the Compose projects carry the
//! fields their documentation defines; secrets are made once, 0600, and kept.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Test;
use serde_json::{Value, json};

const PLAY: &str = "- hosts: all\n  gather_facts: false\n  roles:\n    - stack\n";

/// A project running the stack role on this machine, writing under `base_dir`, with the
/// local root as the stack's user, a PagerDuty key and one service route, so that every
/// part of the alerting templates is exercised.
fn project(base_dir: &Path) -> Test {
    let vars = json!({
        "stack_user": "root",
        "stack_files_only": true,
        "stack_base_dir": base_dir,
        "stack_instance": "pi01",
        "stack_pagerduty_integration_key": "0123456789abcdef0123456789abcdef",
        "stack_alert_service_receivers": {"containers": "ops-team"},
    });
    let test = Test::new()
        .file("play.yml", PLAY)
        .file("hosts.ini", "[local]\nrender ansible_connection=local\n")
        .arg("play.yml")
        .arg("-i")
        .arg("hosts.ini")
        .arg("-e")
        .arg(&vars.to_string());
    let roles = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("roles");
    std::os::unix::fs::symlink(roles, test.path("roles")).expect("link roles");
    test
}

/// Every file below `dir`, as paths relative to it, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

fn yaml(path: &Path) -> Value {
    bramble::yaml::load_file(path).unwrap_or_else(|error| panic!("{error}")).to_value()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("expected a string, got {value}"))
}

/// The values of `KEY=value` lines, for the files holding generated secrets.
fn env_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("env file")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.to_string()))
        .collect()
}

#[test]
fn stack_files_are_the_same_under_bramble_and_ansible_playbook() {
    let out = tempfile::tempdir().unwrap();
    let (ours, theirs) = (out.path().join("bramble"), out.path().join("ansible"));
    project(&ours).bramble().success();
    project(&theirs).ansible().success();

    let listed = files(&ours);
    assert_eq!(listed, files(&theirs));
    assert!(listed.len() >= 20, "{listed:?}");
    for file in &listed {
        let (a, b) = (ours.join(file), theirs.join(file));
        assert_eq!(mode(&a), mode(&b), "mode of {}", file.display());
        let name = file.display().to_string();
        if name.starts_with("secrets/") || name.ends_with(".env") {
            // Generated per host: the same shape, not the same bytes.
            assert_eq!(env_keys(&a), env_keys(&b), "{name}");
            continue;
        }
        let (a, b) = (std::fs::read_to_string(a).unwrap(), std::fs::read_to_string(b).unwrap());
        assert_eq!(a, b, "{name} differs between bramble and ansible-playbook");
    }
}

#[test]
fn secrets_are_generated_once_kept_private_and_reused() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    let first = project(&base).bramble();
    first.success();

    let secrets = base.join("secrets");
    assert_eq!(mode(&secrets), 0o700);
    let read = |name: &str| std::fs::read_to_string(secrets.join(name)).expect("secret");
    let (password, secret) = (read("grafana_admin_password"), read("phoenix_secret"));
    for value in [&password, &secret] {
        assert_eq!(value.len(), 64, "{value}");
        assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{value}");
    }
    assert_ne!(password, secret);
    for file in ["secrets/grafana_admin_password", "secrets/phoenix_secret"] {
        assert_eq!(mode(&base.join(file)), 0o600, "{file}");
    }
    for file in ["grafana/grafana.env", "phoenix/phoenix.env"] {
        assert_eq!(mode(&base.join(file)), 0o600, "{file}");
    }
    let grafana_env = std::fs::read_to_string(base.join("grafana/grafana.env")).unwrap();
    assert!(grafana_env.contains(&format!("GF_SECURITY_ADMIN_PASSWORD={password}\n")));
    let phoenix_env = std::fs::read_to_string(base.join("phoenix/phoenix.env")).unwrap();
    assert!(phoenix_env.contains(&format!("PHOENIX_SECRET={secret}\n")));
    assert!(!first.stdout.contains(&password), "the password reached the output");

    let second = project(&base).bramble();
    second.success();
    assert!(second.recap("render").contains("changed=0 "), "{}", second.stdout);
    assert_eq!(read("grafana_admin_password"), password);
    assert_eq!(read("phoenix_secret"), secret);
}

#[test]
fn promtool_accepts_the_prometheus_configuration() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    project(&base).bramble().success();
    let output = Command::new("promtool")
        .args(["check", "config"])
        .arg(base.join("prometheus/prometheus.yml"))
        .output()
        .expect("promtool is not on PATH; .ci/run installs it from Debian's prometheus package");
    assert!(
        output.status.success(),
        "promtool rejected prometheus.yml:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The defaults' `stack_alert_rules`, as the role ships them.
fn default_rules() -> Vec<Value> {
    let defaults = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("roles/stack/defaults/main.yml");
    yaml(&defaults)["stack_alert_rules"].as_array().expect("a list").clone()
}

#[test]
fn alert_rules_are_query_reduce_threshold_as_grafana_provisions_them() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    project(&base).bramble().success();
    let rules = yaml(&base.join("grafana/provisioning/alerting/rules.yaml"));

    assert_eq!(rules["apiVersion"], json!(1));
    let groups = rules["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group["orgId"], json!(1));
    for field in ["name", "folder", "interval"] {
        assert!(group[field].is_string(), "group.{field}");
    }
    let rendered = group["rules"].as_array().expect("rules");
    let wanted = default_rules();
    assert_eq!(rendered.len(), wanted.len());
    let titles: Vec<&str> = rendered.iter().map(|rule| text(&rule["title"])).collect();
    for name in [
        "NodeDown",
        "HighMemoryUsage",
        "LowDiskSpace",
        "ContainerOOMKill",
        "ContainerNearMemoryLimit",
        "HTTP5xxRate",
    ] {
        assert!(titles.contains(&name), "{name} missing from {titles:?}");
    }

    let uid = regex::Regex::new("^[A-Za-z0-9_-]{1,40}$").unwrap();
    let duration = regex::Regex::new("^[0-9]+[smhd]$").unwrap();
    for (rule, source) in rendered.iter().zip(&wanted) {
        let title = text(&rule["title"]);
        assert_eq!(title, text(&source["name"]));
        assert!(uid.is_match(text(&rule["uid"])), "{title}: uid {}", rule["uid"]);
        assert!(duration.is_match(text(&rule["for"])), "{title}: for {}", rule["for"]);
        assert!(["Alerting", "NoData", "OK", "KeepLast"].contains(&text(&rule["noDataState"])));
        assert!(["Alerting", "Error", "OK", "KeepLast"].contains(&text(&rule["execErrState"])));
        assert_eq!(rule["labels"]["severity"], source["severity"], "{title}");
        assert_eq!(rule["labels"]["service"], source["service"], "{title}");
        assert!(!text(&rule["annotations"]["summary"]).is_empty());

        let data = rule["data"].as_array().expect("data");
        let refs: Vec<&str> = data.iter().map(|query| text(&query["refId"])).collect();
        assert_eq!(refs, ["A", "B", "C"], "{title}");
        assert_eq!(text(&rule["condition"]), "C");
        for query in data {
            assert_eq!(query["model"]["refId"], query["refId"]);
        }
        let (query, reduce, threshold) = (&data[0], &data[1], &data[2]);
        assert_eq!(text(&query["datasourceUid"]), "prometheus");
        assert_eq!(query["model"]["expr"], source["expr"], "{title}");
        assert!(query["relativeTimeRange"]["from"].as_i64().unwrap() > 0);
        assert_eq!(query["relativeTimeRange"]["to"], json!(0));
        assert_eq!(text(&reduce["datasourceUid"]), "__expr__");
        assert_eq!(text(&reduce["model"]["type"]), "reduce");
        assert_eq!(text(&reduce["model"]["expression"]), "A");
        assert_eq!(text(&reduce["model"]["reducer"]), "last");
        assert_eq!(text(&threshold["datasourceUid"]), "__expr__");
        assert_eq!(text(&threshold["model"]["type"]), "threshold");
        assert_eq!(text(&threshold["model"]["expression"]), "B");
        let evaluator = &threshold["model"]["conditions"][0]["evaluator"];
        assert_eq!(evaluator["type"], source["op"], "{title}");
        assert!(["gt", "lt"].contains(&text(&evaluator["type"])));
        assert_eq!(evaluator["params"], json!([source["threshold"]]), "{title}");
    }
}

#[test]
fn critical_alerts_page_through_pagerduty_grouped_by_alertname_instance_service() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    project(&base).bramble().success();
    let alerting = base.join("grafana/provisioning/alerting");

    let points = yaml(&alerting.join("contact-points.yaml"));
    assert_eq!(points["apiVersion"], json!(1));
    let point = &points["contactPoints"][0];
    assert_eq!(point["orgId"], json!(1));
    assert_eq!(text(&point["name"]), "pagerduty");
    let receiver = &point["receivers"][0];
    assert_eq!(text(&receiver["type"]), "pagerduty");
    assert!(!text(&receiver["uid"]).is_empty());
    assert_eq!(text(&receiver["settings"]["integrationKey"]), "0123456789abcdef0123456789abcdef");

    let policies = yaml(&alerting.join("policies.yaml"));
    assert_eq!(policies["apiVersion"], json!(1));
    let root = &policies["policies"][0];
    assert_eq!(root["orgId"], json!(1));
    assert_eq!(root["group_by"], json!(["alertname", "instance", "service"]));
    assert_eq!(text(&root["receiver"]), "grafana-default-email");
    let routes = root["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(text(&routes[0]["receiver"]), "pagerduty");
    assert_eq!(routes[0]["object_matchers"], json!([["severity", "=", "critical"]]));
    assert_eq!(routes[0]["continue"], json!(true));
    assert_eq!(text(&routes[1]["receiver"]), "ops-team");
    assert_eq!(routes[1]["object_matchers"], json!([["service", "=", "containers"]]));
}

#[test]
fn grafana_provisions_its_datasources_and_our_dashboards() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    project(&base).bramble().success();
    let grafana = base.join("grafana");

    let sources = yaml(&grafana.join("provisioning/datasources/datasources.yaml"));
    assert_eq!(sources["apiVersion"], json!(1));
    let sources = sources["datasources"].as_array().expect("datasources");
    let pairs: Vec<(&str, &str, &str)> = sources
        .iter()
        .map(|source| (text(&source["type"]), text(&source["uid"]), text(&source["url"])))
        .collect();
    assert_eq!(
        pairs,
        [
            ("prometheus", "prometheus", "http://prometheus:9090"),
            ("loki", "loki", "http://loki:3100")
        ]
    );
    for source in sources {
        assert_eq!(text(&source["access"]), "proxy");
        assert!(!text(&source["name"]).is_empty());
    }

    let providers = yaml(&grafana.join("provisioning/dashboards/dashboards.yaml"));
    assert_eq!(providers["apiVersion"], json!(1));
    let provider = &providers["providers"][0];
    assert_eq!(text(&provider["type"]), "file");
    let path = text(&provider["options"]["path"]);
    let compose = yaml(&grafana.join("compose.yaml"));
    let mounts = compose["services"]["grafana"]["volumes"].as_array().unwrap();
    assert!(mounts.iter().any(|mount| text(mount) == format!("./dashboards:{path}:ro")));

    let mut uids = Vec::new();
    for name in ["host.json", "containers.json", "http.json"] {
        let dashboard = json_file(&grafana.join("dashboards").join(name));
        uids.push(text(&dashboard["uid"]).to_string());
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{name}");
        for panel in panels {
            for target in panel["targets"].as_array().expect("targets") {
                assert_eq!(target["datasource"]["uid"], json!("prometheus"), "{name}");
                assert!(!text(&target["expr"]).is_empty());
            }
        }
    }
    uids.dedup();
    assert_eq!(uids.len(), 3);
    let http = std::fs::read_to_string(grafana.join("dashboards/http.json")).unwrap();
    for quantile in ["0.5", "0.95", "0.99"] {
        let call = format!(
            "histogram_quantile({quantile}, sum by (le, service_name) (rate(http_server_request_duration_seconds_bucket"
        );
        assert!(http.contains(&call), "no p{quantile} panel");
    }
    assert!(http.contains("http_response_status_code=~\\\"5..\\\""));
}

#[test]
fn every_container_is_pinned_limited_restarted_and_on_the_monitoring_network() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    project(&base).bramble().success();

    for service in ["alloy", "prometheus", "cadvisor", "loki", "grafana", "phoenix"] {
        let compose = yaml(&base.join(service).join("compose.yaml"));
        let container = &compose["services"][service];
        let image = text(&container["image"]);
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest" && !tag.contains('/'), "{service}: {image}");
        assert!(text(&container["mem_limit"]).ends_with('m'), "{service}");
        assert_eq!(text(&container["restart"]), "unless-stopped", "{service}");
        assert_eq!(container["networks"], json!(["monitoring"]), "{service}");
        assert_eq!(compose["networks"]["monitoring"]["external"], json!(true), "{service}");
    }

    let cadvisor = &yaml(&base.join("cadvisor/compose.yaml"))["services"]["cadvisor"];
    assert_eq!(cadvisor["privileged"], json!(true));
    assert_eq!(cadvisor["devices"], json!(["/dev/kmsg"]));
    for mount in ["/:/rootfs:ro", "/var/run:/var/run:ro", "/sys:/sys:ro", "/dev/disk/:/dev/disk:ro"]
    {
        assert!(cadvisor["volumes"].as_array().unwrap().contains(&json!(mount)), "{mount}");
    }
    let prometheus = &yaml(&base.join("prometheus/compose.yaml"))["services"]["prometheus"];
    let flags = prometheus["command"].as_array().unwrap();
    assert!(flags.contains(&json!("--web.enable-remote-write-receiver")));
    assert!(flags.contains(&json!("--storage.tsdb.retention.time=15d")));
    let phoenix = &yaml(&base.join("phoenix/compose.yaml"))["services"]["phoenix"];
    assert_eq!(phoenix["environment"]["PHOENIX_ENABLE_AUTH"], json!("true"));
    let alloy = std::fs::read_to_string(base.join("alloy/config.alloy")).unwrap();
    assert!(alloy.contains("endpoint = \"0.0.0.0:4318\""));
    assert!(!alloy.contains("4317"), "OTLP gRPC must be off by default");
    assert!(alloy.contains("\"instance\" = \"pi01\""));
    let ports = yaml(&base.join("alloy/compose.yaml"))["services"]["alloy"]["ports"].clone();
    assert_eq!(ports, json!(["127.0.0.1:4318:4318"]));
}

#[test]
fn loki_runs_as_one_binary_on_its_file_system_with_retention() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    project(&base).bramble().success();
    let loki = yaml(&base.join("loki/loki.yaml"));

    assert_eq!(loki["auth_enabled"], json!(false));
    assert_eq!(loki["common"]["replication_factor"], json!(1));
    assert_eq!(loki["common"]["ring"]["kvstore"]["store"], json!("inmemory"));
    assert!(loki["common"]["storage"]["filesystem"]["chunks_directory"].is_string());
    let schema = &loki["schema_config"]["configs"][0];
    assert_eq!(schema["store"], json!("tsdb"));
    assert_eq!(schema["object_store"], json!("filesystem"));
    assert_eq!(schema["schema"], json!("v13"));
    assert_eq!(loki["limits_config"]["retention_period"], json!("168h"));
    assert_eq!(loki["compactor"]["retention_enabled"], json!(true));
    assert_eq!(loki["compactor"]["delete_request_store"], json!("filesystem"));
}

/// Alloy is not packaged for Debian, so its configuration is checked for shape only:
/// balanced blocks, and every component it wires to is declared in the file.
#[test]
fn alloy_wires_only_components_it_declares() {
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("stack");
    project(&base).bramble().success();
    let config = std::fs::read_to_string(base.join("alloy/config.alloy")).unwrap();
    let code: String = config
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(code.matches('{').count(), code.matches('}').count(), "unbalanced blocks");

    let declaration = regex::Regex::new(r#"(?m)^([a-z_]+(?:\.[a-z_]+)+) "([a-z_]+)" \{"#).unwrap();
    let declared: Vec<String> =
        declaration.captures_iter(&code).map(|c| format!("{}.{}", &c[1], &c[2])).collect();
    for component in [
        "prometheus.remote_write.default",
        "prometheus.scrape.node",
        "prometheus.scrape.cadvisor",
        "otelcol.receiver.otlp.default",
        "otelcol.exporter.otlphttp.phoenix",
        "loki.write.default",
        "loki.source.journal.journal",
        "loki.source.docker.containers",
        "loki.source.file.syslog",
    ] {
        assert!(declared.iter().any(|name| name == component), "{component} not declared");
    }
    let reference =
        regex::Regex::new(r"\b([a-z_]+(?:\.[a-z_]+)+)\.(receiver|input|rules|targets|output)\b")
            .unwrap();
    for found in reference.captures_iter(&code) {
        assert!(declared.iter().any(|name| name == &found[1]), "{} is not declared", &found[1]);
    }
    assert!(code.contains(r#"url = "http://prometheus:9090/api/v1/write""#));
    assert!(code.contains(r#"url = "http://loki:3100/loki/api/v1/push""#));
    assert!(code.contains(r#"endpoint = "http://phoenix:6006""#));
    assert!(code.contains(r#"values = {"level" = ""}"#));
    assert!(code.contains("/host/var/log/syslog") && code.contains("/host/var/log/auth.log"));
}
