//! The layers of `ARCHITECTURE.md`, held against the code. The table there gives each top-level
//! module of `src/` a layer. A module may import from its own layer or the ones below, never
//! from above, and the modules never import each other in a loop. The engine crates under
//! `crates/` depend on no part of sealwright. The table is read from the document itself, so
//! the map and the code cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `module → layer`, from the "Layers" table of ARCHITECTURE.md.
fn layers() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | layer | name | modules |
        let [_, layer, _, modules, ..] = cells.as_slice() else {
            continue;
        };
        let Ok(layer) = layer.parse::<usize>() else {
            continue;
        };
        for m in modules.split('`').skip(1).step_by(2) {
            assert!(
                out.insert(m.to_owned(), layer).is_none(),
                "{m} is in two layers"
            );
        }
    }
    assert!(out.len() > 10, "the layers table was not found: {out:?}");
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/reconcile/plan.rs` → `reconcile`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file names through `crate::` (or `sealwright::`, from `main.rs`).
fn imports(text: &str, own: &str, modules: &BTreeMap<String, usize>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "sealwright::"] {
        for (i, _) in text.match_indices(prefix) {
            // `some_crate::` is not `crate::`.
            if i > 0 {
                let before = text.as_bytes()[i - 1];
                if before.is_ascii_alphanumeric() || before == b'_' {
                    continue;
                }
            }
            let rest = &text[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != own && modules.contains_key(&name) {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn no_module_imports_upward_or_in_a_loop() {
    let modules = layers();
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let own = module_of(&src, file);
        let Some(&layer) = modules.get(&own) else {
            panic!(
                "{} belongs to module {own:?}, which ARCHITECTURE.md's layers table does not name",
                file.display()
            );
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in imports(&text, &own, &modules) {
            if modules[&used] > layer {
                upward.push(format!(
                    "{} (layer {layer}) imports {used} (layer {})",
                    file.strip_prefix(ROOT).unwrap().display(),
                    modules[&used]
                ));
            }
            graph.entry(own.clone()).or_default().insert(used);
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));

    // A loop: some module reaches itself.
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            assert!(
                m != start,
                "modules import each other in a loop through {start}"
            );
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
}

#[test]
fn the_engine_crates_depend_on_nothing_of_sealwright() {
    let crates = Path::new(ROOT).join("crates");
    for krate in std::fs::read_dir(&crates).unwrap() {
        let dir = krate.unwrap().path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for line in manifest.lines() {
            assert!(
                !(line.starts_with("sealwright") || line.contains("path = \"../..\"")),
                "{}: {line}",
                dir.display()
            );
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                !text.contains("sealwright::"),
                "{} names sealwright",
                f.display()
            );
        }
    }
}

#[test]
fn the_go_yaml_port_depends_on_no_sibling() {
    let dir = Path::new(ROOT).join("crates/goyaml");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("crates/goyaml/Cargo.toml has [dependencies]");
    for line in deps.lines().take_while(|l| !l.starts_with('[')) {
        let name = line.split([' ', '=']).next().unwrap_or("");
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        assert!(
            !(line.contains("path =") || Path::new(ROOT).join("crates").join(name).is_dir()),
            "goyaml depends on a sibling: {line}"
        );
    }
    let mut files = Vec::new();
    rust_files(&dir.join("src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("sops::") && !text.contains("sealwright::"),
            "{} names a sibling",
            f.display()
        );
    }
}

#[test]
fn the_import_reader_sees_what_it_must() {
    let modules: BTreeMap<String, usize> = [("render", 2), ("model", 1), ("reconcile", 3)]
        .into_iter()
        .map(|(m, l)| (m.to_owned(), l))
        .collect();
    let text = "use crate::model::App;\nlet x = crate::reconcile::plan::f();\nuse sops_crate::render;\nuse crate::render::X;";
    assert_eq!(
        imports(text, "render", &modules),
        BTreeSet::from(["model".to_owned(), "reconcile".to_owned()])
    );
}
