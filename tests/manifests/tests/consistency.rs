//! The Knative deployment (knative/) agrees with the Spin application (spin.toml) and the saga
//! contract (DESIGN.md): every subscription, route, variable, probe, database and entry point.

use std::collections::{BTreeMap, BTreeSet};

use manifests::*;
use serde_json::Value;

const SERVING: &str = "serving.knative.dev/v1";
const EVENTING_DIR: &str = "knative/base/eventing";

fn base() -> Vec<Object> {
    objects_under("knative/base")
}

fn triggers() -> Vec<Object> {
    objects_under(EVENTING_DIR)
        .into_iter()
        .filter(|o| o.is("eventing.knative.dev/v1", "Trigger"))
        .collect()
}

fn knative_services() -> Vec<Object> {
    base()
        .into_iter()
        .filter(|o| o.is(SERVING, "Service"))
        .collect()
}

fn trigger_type(t: &Object) -> String {
    t.str_at("/spec/filter/attributes/type")
        .unwrap_or_else(|| {
            panic!(
                "{}: trigger {} has no filter.attributes.type",
                t.file,
                t.name()
            )
        })
        .to_owned()
}

fn subscriber(t: &Object) -> String {
    t.str_at("/spec/subscriber/ref/name")
        .unwrap_or_else(|| {
            panic!(
                "{}: trigger {} has no subscriber.ref.name",
                t.file,
                t.name()
            )
        })
        .to_owned()
}

fn emits(component: &str) -> &'static [&'static str] {
    EMITS
        .iter()
        .find(|(c, _)| *c == component)
        .map(|(_, e)| *e)
        .unwrap_or(&[])
}

fn container(svc: &Object) -> &Value {
    svc.at("/spec/template/spec/containers/0")
}

#[test]
fn every_trigger_delivers_to_a_spin_component_at_its_events_route() {
    let app = SpinApp::load();
    let triggers = triggers();
    assert!(!triggers.is_empty(), "no Trigger in {EVENTING_DIR}");
    for t in &triggers {
        let sub = subscriber(t);
        let ctx = format!("{}: trigger {}", t.file, t.name());
        assert_eq!(
            t.str_at("/spec/broker"),
            Some("default"),
            "{ctx}: spec.broker"
        );
        assert_eq!(
            t.str_at("/spec/subscriber/ref/apiVersion"),
            Some(SERVING),
            "{ctx}"
        );
        assert_eq!(
            t.str_at("/spec/subscriber/ref/kind"),
            Some("Service"),
            "{ctx}"
        );
        assert!(
            app.deployable().contains(&sub),
            "{ctx}: subscriber {sub} is not a deployable component of spin.toml"
        );
        let uri = t.str_at("/spec/subscriber/uri").unwrap_or_default();
        assert_eq!(uri, format!("/events/{sub}"), "{ctx}: subscriber.uri");
        assert!(
            app.serves(&sub, uri),
            "{ctx}: {uri} is not a spin.toml route of {sub}"
        );
    }
}

#[test]
fn triggers_filter_one_exact_htaxi_type_and_are_named_subscriber_dash_event() {
    for t in triggers() {
        let ctx = format!("{}: trigger {}", t.file, t.name());
        let attrs = t
            .at("/spec/filter/attributes")
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            attrs.keys().collect::<Vec<_>>(),
            vec!["type"],
            "{ctx}: filter only on type (exact match)"
        );
        let ty = trigger_type(&t);
        let event = ty
            .strip_prefix("htaxi.")
            .unwrap_or_else(|| panic!("{ctx}: type {ty} lacks htaxi. prefix"));
        assert_eq!(
            t.name(),
            format!("{}-{}", subscriber(&t), kebab(event)),
            "{ctx}: name"
        );
        assert!(
            t.at("/spec/filters").is_null(),
            "{ctx}: use filter.attributes, not filters"
        );
    }
}

#[test]
fn subscriptions_are_exactly_the_saga_contract() {
    let mut actual: BTreeSet<(String, String)> = BTreeSet::new();
    for t in triggers() {
        let pair = (subscriber(&t), trigger_type(&t));
        assert!(
            actual.insert(pair.clone()),
            "duplicate Trigger for {pair:?}"
        );
    }
    let expected: BTreeSet<(String, String)> = SUBSCRIPTIONS
        .iter()
        .flat_map(|(s, types)| types.iter().map(move |t| (s.to_string(), t.to_string())))
        .collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing triggers {missing:?}, unexpected triggers {extra:?}"
    );
}

#[test]
fn every_emitted_event_type_has_at_least_one_trigger() {
    let subscribed: BTreeSet<String> = triggers().iter().map(trigger_type).collect();
    for (component, types) in EMITS {
        for ty in *types {
            assert!(
                subscribed.contains(*ty),
                "{ty} (emitted by {component}) reaches no subscriber"
            );
        }
    }
}

#[test]
fn no_subscriber_listens_to_a_type_it_emits() {
    // The Kafka broker has no hop limit: a reply matching its own Trigger would loop forever.
    for t in triggers() {
        let (sub, ty) = (subscriber(&t), trigger_type(&t));
        assert!(
            !emits(&sub).contains(&ty.as_str()),
            "{}: {sub} subscribes to {ty}, which it emits itself",
            t.file
        );
    }
}

#[test]
fn triggers_retry_with_exponential_backoff_and_dead_letter_to_a_kafka_sink() {
    let sinks: BTreeSet<String> = base()
        .iter()
        .filter(|o| o.is("eventing.knative.dev/v1alpha1", "KafkaSink"))
        .map(|o| o.name().to_owned())
        .collect();
    for t in triggers() {
        let ctx = format!("{}: trigger {}", t.file, t.name());
        assert!(
            t.at("/spec/delivery/retry").as_u64().unwrap_or(0) > 0,
            "{ctx}: delivery.retry"
        );
        assert_eq!(
            t.str_at("/spec/delivery/backoffPolicy"),
            Some("exponential"),
            "{ctx}"
        );
        for field in ["backoffDelay", "timeout"] {
            let v = t
                .str_at(&format!("/spec/delivery/{field}"))
                .unwrap_or_default();
            assert!(
                v.starts_with("PT") && v.len() > 3,
                "{ctx}: delivery.{field} must be an ISO-8601 duration, got {v:?}"
            );
        }
        assert_eq!(
            t.str_at("/spec/delivery/deadLetterSink/ref/kind"),
            Some("KafkaSink"),
            "{ctx}"
        );
        let dls = t
            .str_at("/spec/delivery/deadLetterSink/ref/name")
            .unwrap_or_default();
        assert!(
            sinks.contains(dls),
            "{ctx}: dead-letter sink {dls} is not a KafkaSink in knative/base"
        );
    }
}

#[test]
fn saga_critical_triggers_are_ordered_per_ride() {
    for t in triggers() {
        let order = t.str_at("/metadata/annotations/kafka.eventing.knative.dev~1delivery.order");
        assert!(
            matches!(order, Some("ordered" | "unordered")),
            "{}: delivery.order annotation is {order:?}",
            t.file
        );
        if matches!(subscriber(&t).as_str(), "allocate" | "pay") {
            assert_eq!(
                order,
                Some("ordered"),
                "{}: allocate's and pay's triggers must be ordered",
                t.file
            );
        }
    }
}

#[test]
fn the_broker_is_the_kafka_class_default_broker_with_delivery_defaults() {
    let brokers: Vec<Object> = objects_under(EVENTING_DIR)
        .into_iter()
        .filter(|o| o.is("eventing.knative.dev/v1", "Broker"))
        .collect();
    assert_eq!(brokers.len(), 1, "exactly one Broker in {EVENTING_DIR}");
    let b = &brokers[0];
    assert_eq!(b.name(), "default");
    assert_eq!(
        b.str_at("/metadata/annotations/eventing.knative.dev~1broker.class"),
        Some("Kafka")
    );
    assert_eq!(
        b.str_at("/spec/delivery/backoffPolicy"),
        Some("exponential")
    );
    assert!(b.at("/spec/delivery/retry").as_u64().unwrap_or(0) > 0);
    assert!(b.str_at("/spec/delivery/timeout").is_some());
    assert_eq!(
        b.str_at("/spec/delivery/deadLetterSink/ref/kind"),
        Some("KafkaSink")
    );
    let cm_name = b
        .str_at("/spec/config/name")
        .expect("broker spec.config.name");
    assert_eq!(b.str_at("/spec/config/namespace"), Some(NAMESPACE));
    let cm = base()
        .into_iter()
        .find(|o| o.is("v1", "ConfigMap") && o.name() == cm_name)
        .unwrap_or_else(|| panic!("broker config ConfigMap {cm_name} is not in knative/base"));
    for key in [
        "bootstrap.servers",
        "default.topic.partitions",
        "default.topic.replication.factor",
    ] {
        assert!(
            cm.at(&format!("/data/{key}")).is_string(),
            "{}: {cm_name} lacks {key}",
            cm.file
        );
    }
}

#[test]
fn the_local_broker_mounts_exactly_the_trigger_directory_that_kustomize_applies() {
    let app = SpinApp::load();
    let broker = &app.components["broker"];
    assert!(
        broker
            .files
            .iter()
            .any(|(src, dst)| src == EVENTING_DIR && dst.as_deref() == Some("/knative")),
        "spin.toml broker files must mount {EVENTING_DIR} at /knative, got {:?}",
        broker.files
    );
    for o in objects_under(EVENTING_DIR) {
        assert!(
            matches!(o.kind(), "Trigger" | "Broker"),
            "{}: only Trigger and Broker objects belong in {EVENTING_DIR} (found {})",
            o.file,
            o.kind()
        );
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo_root().join(EVENTING_DIR))
        .expect("eventing dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("eventing/{n}"))
        .collect();
    let listed: BTreeSet<String> = kustomization("knative/base")["resources"]
        .as_array()
        .expect("base resources")
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| r.starts_with("eventing/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(on_disk, listed, "knative/base/kustomization.yaml must list every file of {EVENTING_DIR}, and only existing ones");
}

#[test]
fn every_deployable_component_has_exactly_one_knative_service() {
    let app = SpinApp::load();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for s in knative_services() {
        *count.entry(s.name().to_owned()).or_default() += 1;
    }
    for id in app.deployable() {
        assert_eq!(
            count.get(&id).copied().unwrap_or(0),
            1,
            "component {id} needs exactly one Knative Service"
        );
    }
    for name in count.keys() {
        assert!(
            app.deployable().contains(name),
            "Knative Service {name} is not a deployable spin.toml component"
        );
    }
}

/// Environment variable names a Knative Service's container gets, with where each comes from.
fn env_of(svc: &Object, objects: &[Object], secrets: &[Object]) -> BTreeMap<String, &'static str> {
    let c = container(svc);
    let mut env = BTreeMap::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        let source = if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
            let (sname, key) = (
                r["name"].as_str().unwrap_or(""),
                r["key"].as_str().unwrap_or(""),
            );
            let found = secrets
                .iter()
                .any(|s| s.name() == sname && !s.at(&format!("/stringData/{key}")).is_null());
            assert!(found, "{}: {name} refers to Secret {sname} key {key}, which knative/secrets does not define", svc.file);
            "secret"
        } else {
            "value"
        };
        env.insert(name, source);
    }
    for from in c["envFrom"].as_array().into_iter().flatten() {
        if let Some(cm) = from.pointer("/configMapRef/name").and_then(Value::as_str) {
            let cm = objects
                .iter()
                .find(|o| o.is("v1", "ConfigMap") && o.name() == cm)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: envFrom ConfigMap {cm} is not in knative/base",
                        svc.file
                    )
                });
            for k in cm
                .at("/data")
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                env.insert(k.clone(), "configmap");
            }
        }
        if let Some(sn) = from.pointer("/secretRef/name").and_then(Value::as_str) {
            let s = secrets
                .iter()
                .find(|s| s.name() == sn)
                .unwrap_or_else(|| panic!("Secret {sn} not in knative/secrets"));
            for k in s
                .at("/stringData")
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                env.insert(k.clone(), "secret");
            }
        }
    }
    env
}

#[test]
fn every_service_gets_every_spin_variable_it_needs() {
    let app = SpinApp::load();
    let objects = base();
    let secrets = objects_under("knative/secrets");
    for svc in knative_services() {
        let id = svc.name();
        let env = env_of(&svc, &objects, &secrets);
        // What the component reads, plus every required app variable: Spin refuses to start while a
        // required variable of the application has no value, even in a component that never reads it.
        let required = app
            .variables
            .iter()
            .filter(|(_, v)| v.required)
            .map(|(k, _)| k.clone());
        for var in app.components[id]
            .app_variables
            .iter()
            .filter(|v| !DEV_ONLY_VARIABLES.contains(&v.as_str()))
            .cloned()
            .chain(required)
        {
            let name = spin_env_name(&var);
            let source = env.get(&name).copied();
            assert!(
                source.is_some(),
                "{}: Service {id} lacks {name} (spin variable {var})",
                svc.file
            );
            if app.variables.get(&var).is_some_and(|v| v.secret) {
                assert_eq!(
                    source,
                    Some("secret"),
                    "{}: {name} is a secret variable; it must come from a Secret",
                    svc.file
                );
            }
        }
        assert!(
            !env.contains_key("PORT"),
            "{}: never set PORT, Knative sets it",
            svc.file
        );
    }
}

#[test]
fn probes_hit_the_components_own_health_route() {
    let app = SpinApp::load();
    for svc in knative_services() {
        let id = svc.name();
        for probe in ["readinessProbe", "livenessProbe"] {
            let path = container(&svc)[probe]["httpGet"]["path"].as_str();
            assert_eq!(
                path,
                Some(format!("/health/{id}").as_str()),
                "{}: {probe} of {id}",
                svc.file
            );
            assert!(
                app.serves(id, path.unwrap_or_default()),
                "{}: {probe} path is not a route of {id}",
                svc.file
            );
            assert!(
                container(&svc)[probe]["exec"].is_null(),
                "{}: no exec probes for Wasm",
                svc.file
            );
        }
    }
}

#[test]
fn services_scale_to_zero_unless_they_serve_the_synchronous_path() {
    for svc in knative_services() {
        let ann = |k: &str| {
            svc.str_at(&format!(
                "/spec/template/metadata/annotations/autoscaling.knative.dev~1{k}"
            ))
            .map(str::to_owned)
        };
        let min: u32 = ann("min-scale")
            .expect("min-scale")
            .parse()
            .expect("min-scale number");
        let max: u32 = ann("max-scale")
            .expect("max-scale")
            .parse()
            .expect("max-scale number");
        assert!(ann("target").is_some(), "{}: autoscaling target", svc.file);
        assert!(min <= max && max > 0, "{}: min {min} max {max}", svc.file);
        let allowed_warm = matches!(svc.name(), "grab" | "pay");
        assert!(
            min == 0 || (allowed_warm && min == 1),
            "{}: only grab and pay may keep one warm pod",
            svc.file
        );
        let res = &container(&svc)["resources"];
        assert!(
            res["requests"].is_object() && res["limits"].is_object(),
            "{}: requests and limits",
            svc.file
        );
    }
}

#[test]
fn every_service_is_cluster_local_behind_the_one_httproute() {
    for svc in knative_services() {
        let vis = svc.str_at("/metadata/labels/networking.knative.dev~1visibility");
        assert_eq!(
            vis,
            Some("cluster-local"),
            "{}: visibility of {}",
            svc.file,
            svc.name()
        );
    }
}

#[test]
fn cluster_urls_point_at_pay_and_the_kafka_broker_ingress() {
    let cm = base()
        .into_iter()
        .find(|o| o.is("v1", "ConfigMap") && o.name() == "htaxi-config")
        .expect("htaxi-config");
    assert_eq!(
        cm.str_at("/data/SPIN_VARIABLE_PAY_URL"),
        Some("http://pay.htaxi.svc.cluster.local")
    );
    assert_eq!(
        cm.str_at("/data/SPIN_VARIABLE_BROKER_ORIGIN"),
        Some("http://kafka-broker-ingress.knative-eventing.svc.cluster.local")
    );
    assert_eq!(
        cm.str_at("/data/SPIN_VARIABLE_BROKER_PATH"),
        Some("/htaxi/default")
    );
    assert_eq!(
        kustomization("knative/base")["namespace"].as_str(),
        Some(NAMESPACE)
    );
}

#[test]
fn pingsources_flush_each_producers_outbox_every_minute() {
    let app = SpinApp::load();
    let pings: Vec<Object> = base()
        .into_iter()
        .filter(|o| o.is("sources.knative.dev/v1", "PingSource"))
        .collect();
    let mut flushed = BTreeSet::new();
    for p in &pings {
        assert_eq!(
            p.str_at("/spec/sink/ref/apiVersion"),
            Some(SERVING),
            "{}",
            p.file
        );
        let target = p.str_at("/spec/sink/ref/name").expect("sink ref name");
        let uri = p.str_at("/spec/sink/uri").expect("sink uri");
        assert_eq!(
            uri,
            format!("/outbox/flush/{target}"),
            "{}: PingSource {}",
            p.file,
            p.name()
        );
        assert!(
            app.serves(target, uri),
            "{}: {uri} is not a route of {target}",
            p.file
        );
        assert_eq!(p.str_at("/spec/schedule"), Some("* * * * *"), "{}", p.file);
        flushed.insert(target.to_owned());
    }
    for (producer, types) in EMITS {
        if !types.is_empty() {
            assert!(
                flushed.contains(*producer),
                "producer {producer} has no outbox-flush PingSource"
            );
        }
    }
}

#[test]
fn the_public_httproute_sends_each_path_to_the_component_that_owns_it() {
    let app = SpinApp::load();
    let routes: Vec<Object> = base()
        .into_iter()
        .filter(|o| o.is("gateway.networking.k8s.io/v1", "HTTPRoute"))
        .collect();
    assert_eq!(routes.len(), 1, "one public HTTPRoute");
    let mut exposed = BTreeSet::new();
    for rule in routes[0].at("/spec/rules").as_array().expect("rules") {
        let host = rule
            .pointer("/filters/0/urlRewrite/hostname")
            .and_then(Value::as_str)
            .expect("every rule rewrites Host to a Knative Service");
        let svc = host
            .strip_suffix(&format!(".{NAMESPACE}.svc.cluster.local"))
            .expect("cluster-local host");
        for m in rule["matches"].as_array().expect("matches") {
            let path = m
                .pointer("/path/value")
                .and_then(Value::as_str)
                .expect("path match");
            assert_eq!(
                app.owner_of(path),
                Some(svc),
                "HTTPRoute sends {path} to {svc}"
            );
            assert_ne!(
                svc, "pay",
                "pay is internal and must not be routed publicly"
            );
            exposed.insert(path.to_owned());
        }
    }
    for want in [
        "/grabs",
        "/taxis",
        "/allocations",
        "/grabStatuses",
        "/notifications",
    ] {
        assert!(exposed.contains(want), "HTTPRoute must route {want}");
    }
    for path in &exposed {
        for internal in ["/events", "/outbox", "/payments", "/broker"] {
            assert!(
                !path.starts_with(internal),
                "{path}: service-to-service routes are never public"
            );
        }
    }
}

#[test]
fn runtime_config_maps_every_sqlite_label_to_its_own_libsql_server() {
    let app = SpinApp::load();
    let rc: toml::Table = read("knative/base/runtime-config.toml")
        .parse()
        .expect("runtime-config.toml parses");
    let dbs = rc["sqlite_database"]
        .as_table()
        .expect("[sqlite_database.*]");
    let k8s_services: BTreeSet<String> = base()
        .iter()
        .filter(|o| o.is("v1", "Service"))
        .map(|o| o.name().to_owned())
        .collect();
    let mut urls = BTreeSet::new();
    for id in app.deployable() {
        for label in &app.components[&id].sqlite_databases {
            let db = dbs
                .get(label)
                .and_then(|v| v.as_table())
                .unwrap_or_else(|| panic!("no [sqlite_database.{label}]"));
            assert_eq!(
                db.get("type").and_then(|v| v.as_str()),
                Some("libsql"),
                "label {label}"
            );
            assert!(
                db.get("token").and_then(|v| v.as_str()).is_some(),
                "label {label}: token is required by Spin"
            );
            let url = db.get("url").and_then(|v| v.as_str()).expect("url");
            let host = url
                .strip_prefix("http://")
                .expect("http url")
                .split([':', '/'])
                .next()
                .unwrap_or_default();
            let svc = host
                .strip_suffix(&format!(".{NAMESPACE}.svc.cluster.local"))
                .expect("in-cluster host");
            assert!(
                k8s_services.contains(svc),
                "label {label}: {svc} is not a Service in knative/base"
            );
            assert!(
                urls.insert(url.to_owned()),
                "label {label} shares {url}: each service owns its database"
            );
        }
    }
    // The example Secret carries exactly this file (with the token still a placeholder).
    let secret = objects_under("knative/secrets")
        .into_iter()
        .find(|o| o.name() == "htaxi-runtime-config")
        .expect("example secret");
    let embedded: toml::Table = secret
        .str_at("/stringData/runtime-config.toml")
        .expect("key")
        .parse()
        .expect("toml");
    assert_eq!(
        embedded, rc,
        "knative/secrets/secret.example.yaml must embed knative/base/runtime-config.toml"
    );
}

#[test]
fn services_mount_the_runtime_config_where_spin_reads_it() {
    for svc in knative_services() {
        let mounts = container(&svc)["volumeMounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let m = mounts
            .iter()
            .find(|m| m["mountPath"] == "/runtime-config.toml")
            .unwrap_or_else(|| panic!("{}: no /runtime-config.toml", svc.file));
        let vol = svc
            .at("/spec/template/spec/volumes")
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == m["name"])
            .expect("volume");
        assert_eq!(
            vol.pointer("/secret/secretName").and_then(Value::as_str),
            Some("htaxi-runtime-config"),
            "{}",
            svc.file
        );
    }
}

#[test]
fn overlays_run_each_service_with_only_its_own_component() {
    let app = SpinApp::load();
    let shim = kustomization("knative/overlays/shim");
    let container = kustomization("knative/overlays/container");
    for id in app.deployable() {
        let ops = patch_ops_for(&shim, "Service", &id);
        let retained = ops.iter().any(|op| {
            op["value"]["name"] == "SPIN_COMPONENTS_TO_RETAIN"
                && op["value"]["value"] == Value::String(id.clone())
        });
        assert!(
            retained,
            "shim overlay: {id} must set SPIN_COMPONENTS_TO_RETAIN={id}"
        );
        assert!(
            ops.iter()
                .any(|op| op["path"] == "/spec/template/spec/runtimeClassName"
                    && op["value"] == "wasmtime-spin-v2"),
            "shim: runtimeClassName for {id}"
        );
        assert!(
            ops.iter().any(
                |op| op["path"] == "/spec/template/spec/containers/0/command"
                    && op["value"] == serde_json::json!(["/"])
            ),
            "shim: command [\"/\"] for {id}"
        );
        let args = patch_ops_for(&container, "Service", &id)
            .into_iter()
            .find(|op| op["path"] == "/spec/template/spec/containers/0/args")
            .unwrap_or_else(|| panic!("container overlay: no args for {id}"));
        let args: Vec<&str> = args["value"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let pos = args
            .iter()
            .position(|a| *a == "--component-id")
            .expect("--component-id");
        assert_eq!(
            args.get(pos + 1),
            Some(&id.as_str()),
            "container overlay: --component-id {id}"
        );
        assert!(
            args.contains(&"/runtime-config.toml"),
            "container overlay: runtime config for {id}"
        );
    }
}

/// Spin refuses to retain a component whose literal `allowed_outbound_hosts` name another
/// component's `http://<id>.spin.internal` (`validate_service_chaining_for_components`), and skips
/// templates. So every Service reaches the others only through variables: the ConfigMap renders
/// each entry to one cluster origin, the manifest defaults to service chaining for `spin up`.
#[test]
fn each_service_reaches_other_services_only_through_its_variables() {
    let app = SpinApp::load();
    let cm = base()
        .into_iter()
        .find(|o| o.is("v1", "ConfigMap") && o.name() == "htaxi-config")
        .expect("htaxi-config");
    let cluster_value = |var: &str| {
        cm.str_at(&format!("/data/{}", spin_env_name(var)))
            .map(str::to_owned)
    };
    let default_value = |var: &str| app.variables.get(var).and_then(|v| v.default.clone());
    for id in app.deployable() {
        for entry in &app.components[&id].allowed_outbound_hosts {
            assert!(
                entry.contains("{{"),
                "{id}: allowed_outbound_hosts entry {entry:?} is literal: with only {id} retained \
                 Spin checks it, and a cluster host name would be allowed under `spin up` too"
            );
            for (shape, value_of) in [
                ("cluster", &cluster_value as &dyn Fn(&str) -> Option<String>),
                ("default", &default_value),
            ] {
                let origin = render_template(entry, value_of).unwrap_or_else(|| {
                    panic!("{id}: {entry:?} uses a variable without a {shape} value")
                });
                let (scheme, host) = origin.split_once("://").unwrap_or_else(|| {
                    panic!("{id}: {entry:?} renders to {origin:?} ({shape}): no scheme")
                });
                assert_eq!(scheme, "http", "{id}: {entry:?} ({shape})");
                assert!(
                    !host.contains('/') && !host.contains('*') && !host.is_empty(),
                    "{id}: {entry:?} renders to {origin:?} ({shape}): Spin needs one origin, \
                     scheme://host[:port] without a path or wildcard"
                );
                let chaining = host.ends_with(".spin.internal");
                assert_eq!(
                    chaining,
                    shape == "default",
                    "{id}: {entry:?} renders to {origin:?} ({shape}): defaults chain inside \
                     `spin up`, the cluster uses Service names"
                );
            }
        }
    }
}

/// Every file under `dir` (relative to the repository root), recursively.
fn files_under(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![repo_root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(repo_root()).expect("under the root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn dev_only_variables_have_an_off_default_and_no_cluster_manifest_sets_them() {
    let app = SpinApp::load();
    for var in DEV_ONLY_VARIABLES {
        let v = app
            .variables
            .get(*var)
            .unwrap_or_else(|| panic!("spin.toml declares {var}"));
        assert!(!v.required, "{var} must default to off");
        assert_eq!(v.default.as_deref(), Some(""), "{var}: off means empty");
        // SPIN_VARIABLE_<VAR> in any case, or the variable's own name, anywhere a cluster
        // build reads (the kustomize tree, the secrets examples, the container image).
        let files = files_under("knative");
        assert!(
            files.iter().any(|f| f.ends_with("console.yaml")),
            "walked knative/"
        );
        for file in files.into_iter().chain(files_under("deploy")) {
            let text = read(&file).to_ascii_lowercase();
            assert!(
                !text.contains(var),
                "{file} names {var}: dev-only, never set in a cluster"
            );
        }
    }
}

#[test]
fn notify_runs_in_the_cluster_with_the_memory_tuning_it_is_measured_with_locally() {
    const KNOB: &str = "SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT";
    let makefile = std::fs::read_to_string(repo_root().join("Makefile")).expect("Makefile");
    let local = makefile
        .lines()
        .find_map(|l| l.strip_prefix(&format!("export {KNOB} ?= ")))
        .unwrap_or_else(|| panic!("the Makefile must export {KNOB}"))
        .trim();
    let services = knative_services();
    let notify = services
        .iter()
        .find(|s| s.at("/metadata/name") == "notify")
        .expect("a Knative Service named notify");
    let in_cluster = container(notify)["env"]
        .as_array()
        .expect("notify's env")
        .iter()
        .find(|e| e["name"] == KNOB)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("knative/base/serving/notify.yaml must set {KNOB}"));
    assert_eq!(
        in_cluster, local,
        "notify's Service must keep resident what `make up` and `make bench` keep"
    );
}
