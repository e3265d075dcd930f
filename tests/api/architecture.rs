//! The layering of docs/architecture.md, checked on the source: the domain knows no HTTP
//! framework, only the store speaks SQL, and Google's wire format stays inside its client.
//! A `use` that crosses a line fails here with the file and the rule.

use std::path::{Path, PathBuf};

const HTTP_ERRORS: &str = "errors are mapped to HTTP statuses once, in src/error.rs";

/// `(directory or file under src/, what it must not name, why)`.
const RULES: &[(&str, &str, &str)] = &[
    ("generation", "axum", "the domain knows no HTTP framework"),
    (
        "generation",
        "crate::api",
        "the domain does not call the HTTP layer",
    ),
    ("generation", "sqlx", "SQL belongs to src/store"),
    (
        "generation",
        "provider::gemini",
        "the domain sees providers through their trait",
    ),
    ("provider", "axum", "providers know no HTTP server"),
    (
        "provider",
        "crate::api",
        "providers do not call the HTTP layer",
    ),
    ("store", "axum", "the store knows no HTTP framework"),
    (
        "store",
        "crate::api",
        "the store does not call the HTTP layer",
    ),
    ("jobs", "axum", "the queue knows no HTTP framework"),
    (
        "jobs",
        "crate::api",
        "the queue runs units of work, not HTTP requests",
    ),
    ("batches", "axum", "batches know no HTTP framework"),
    ("models", "axum", "the model table knows no HTTP framework"),
    ("limits", "axum", "limits know no HTTP framework"),
    ("auth", "axum", "keys know no HTTP framework"),
    // Each layer fails in its own terms; the HTTP status is decided once, in src/error.rs.
    ("generation", "ApiError", HTTP_ERRORS),
    ("generation", "ErrorKind", HTTP_ERRORS),
    ("provider", "ApiError", HTTP_ERRORS),
    ("provider", "ErrorKind", HTTP_ERRORS),
    ("store", "ApiError", HTTP_ERRORS),
    ("store", "ErrorKind", HTTP_ERRORS),
    ("jobs", "ApiError", HTTP_ERRORS),
    ("jobs", "ErrorKind", HTTP_ERRORS),
    ("batches", "ApiError", HTTP_ERRORS),
    ("batches", "ErrorKind", HTTP_ERRORS),
    ("models", "ApiError", HTTP_ERRORS),
    ("models", "ErrorKind", HTTP_ERRORS),
    ("imaging.rs", "ApiError", HTTP_ERRORS),
    ("imaging.rs", "ErrorKind", HTTP_ERRORS),
    ("auth", "ApiError", HTTP_ERRORS),
    ("auth", "ErrorKind", HTTP_ERRORS),
    (
        "api",
        "sqlx",
        "handlers reach storage through src/store's traits",
    ),
    (
        "api",
        "gemini::wire",
        "Google's wire types are private to src/provider/gemini",
    ),
];

/// Every `.rs` file under `path` (or `path` itself).
fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let entry = entry.unwrap().path();
        if entry.is_dir() {
            files.extend(sources(&entry));
        } else if entry.extension().is_some_and(|e| e == "rs") {
            files.push(entry);
        }
    }
    files
}

/// `file:line` of every code line (comments aside) under `root` that names `token` as a
/// path segment (`axum::…`, `use sqlx;`, `crate::api::…`).
fn violations(root: &Path, token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for file in sources(root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let names_it = code.match_indices(token).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                let after = code[at + token.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if names_it {
                found.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn each_layer_imports_only_what_docs_architecture_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (layer, token, why) in RULES {
        for line in violations(&src.join(layer), token) {
            broken.push(format!(
                "{line}\n    src/{layer} must not name `{token}`: {why}"
            ));
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_layering_check_finds_a_planted_import_and_ignores_comments() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(
        dir.path().join("nested/planted.rs"),
        "//! knows no axum\nuse axum::Router; // the HTTP framework\nlet axum_like = 1;\n",
    )
    .unwrap();
    let found = violations(dir.path(), "axum");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("planted.rs:2"), "{found:?}");

    std::fs::write(
        dir.path().join("errors.rs"),
        "//! not an ApiError\nfn f() -> Result<(), crate::error::ApiError> {}\nstruct MyApiError;\n",
    )
    .unwrap();
    let found = violations(&dir.path().join("errors.rs"), "ApiError");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("errors.rs:2"), "{found:?}");
}
