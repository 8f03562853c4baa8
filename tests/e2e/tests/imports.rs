//! The components must run on containerd-shim-spin (Spin 3.6.3, WASI 0.2 only): they may
//! import nothing but WASI 0.2 and Spin's sqlite / variables interfaces. That holds for
//! notify too, the Python component componentize-py builds from functions/notify/wit.

use e2e::repo_root;

fn allowed(import: &str) -> bool {
    let wasi_p2 = import.starts_with("wasi:") && import.contains("@0.2.");
    let spin = import.starts_with("spin:sqlite/sqlite@3.0.0")
        || import.starts_with("fermyon:spin/variables@2.0.0")
        || import.starts_with("wasi:config/store@0.2.0-draft");
    wasi_p2 || spin
}

#[test]
fn components_import_only_wasi_0_2_and_spin_sqlite_and_variables() {
    let root = repo_root();
    let mut checked = 0;
    for c in ["grab", "pay", "allocate", "grab_status", "notify", "broker"] {
        let wasm = root.join(format!("target/wasm32-wasip2/release/{c}.wasm"));
        let imports = spin_host::component_imports(&wasm)
            .unwrap_or_else(|e| panic!("{}: {e:#} (run `make build`)", wasm.display()));
        assert!(
            !imports.is_empty(),
            "{c} imports something (it answers HTTP)"
        );
        let bad: Vec<_> = imports.iter().filter(|i| !allowed(i)).collect();
        assert!(
            bad.is_empty(),
            "{c} imports interfaces the shim may not provide: {bad:?}"
        );
        assert!(
            !imports.iter().any(|i| i.contains("@0.3")),
            "{c} must not use WASI 0.3 / wasip3 features"
        );
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn the_import_rule_rejects_what_the_shim_lacks() {
    assert!(allowed("wasi:http/outgoing-handler@0.2.0"));
    assert!(allowed("spin:sqlite/sqlite@3.0.0"));
    assert!(!allowed("wasi:http/handler@0.3.0-rc-2026-01-06"));
    assert!(!allowed("spin:postgres/postgres@4.0.0"));
    assert!(!allowed("fermyon:spin/llm@2.0.0"));
}
