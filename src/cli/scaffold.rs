//! `wasm-lambda new NAME`: a Rust function crate on `extism-pdk` and the guest SDK
//! (`wasm-lambda-sdk`, from this repository's `sdk/`) with its manifest, ready to build
//! (`wasm-lambda build`) and to pass `wasm-lambda validate`.

use std::path::{Path, PathBuf};

use crate::manifest::MANIFEST_FILE;
use crate::name;

/// Creates `<dir>/<name>/` and returns it.
pub fn new_function(dir: &Path, name: &str) -> Result<PathBuf, String> {
    name::check(name)?;
    let root = dir.join(name);
    if root.exists() {
        return Err(format!("{} already exists", root.display()));
    }
    // The library's name must be an identifier: it names the built module too.
    let library = match name.replace('-', "_") {
        library if library.starts_with(|c: char| c.is_ascii_digit()) => format!("f_{library}"),
        library => library,
    };
    let sdk = sdk_path(&root);
    let files = [
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
name = "{library}"
crate-type = ["cdylib"]

[dependencies]
extism-pdk = "1"
serde_json = "1"
wasm-lambda-sdk = {{ path = "{sdk}" }}

# A function is its own crate.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
"#
            ),
        ),
        (
            MANIFEST_FILE,
            format!(
                r#"name: {name}
runtime: wasm
timeout: 5s
build:
  command: cargo
  args: [build, --release, --target, wasm32-unknown-unknown]
  watch: ["src/**/*.rs", Cargo.toml]
  output: target/wasm32-unknown-unknown/release/{library}.wasm
hooks:
  - type: http
    method: GET
    path: /{name}
"#
            ),
        ),
        (
            "src/lib.rs",
            format!(
                r#"//! `GET /{name}`: answers with the request it got. Edit away: `wasm-lambda build --watch`
//! rebuilds it, and the bootstrap serves the new module from the next request on.

use extism_pdk::*;
use serde_json::json;
// Linking the SDK also makes a panic's message reach the caller and the log.
use wasm_lambda_sdk::http::{{Request, Response}};

#[plugin_fn]
pub fn handle(Json(request): Json<Request>) -> FnResult<Json<Response>> {{
    info!("{name} handling {{}}", request.path);
    let body = json!({{"function": "{name}", "query": request.query}});
    Ok(Json(Response::json(200, &body)?))
}}
"#
            ),
        ),
    ];
    for (file, contents) in files {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| format!("{}: {error}", parent.display()))?;
        }
        std::fs::write(&path, contents).map_err(|error| format!("{}: {error}", path.display()))?;
    }
    Ok(root)
}

/// The guest SDK's directory as the new crate at `root` should name it: relative when both are
/// in one tree (a function beside the examples in this repository), else absolute.
fn sdk_path(root: &Path) -> String {
    let sdk = Path::new(SDK_DIR);
    let absolute = |path: &Path| {
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .components()
            .collect::<PathBuf>()
    };
    let (sdk, root) = (absolute(sdk), absolute(root));
    let common = sdk
        .components()
        .zip(root.components())
        .take_while(|(a, b)| a == b)
        .count();
    let path = if common > 1 {
        let up = root.components().count() - common;
        let mut relative: PathBuf = std::iter::repeat_n("..", up).collect();
        relative.extend(sdk.components().skip(common));
        relative
    } else {
        sdk
    };
    path.to_string_lossy().replace('\\', "/")
}

/// Where the guest SDK's sources are: `sdk/` of the tree this CLI was built from (the SDK is
/// not on crates.io).
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk");
