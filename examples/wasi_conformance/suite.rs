//! Finding the suite's tests and reading what each expects, by the suite's
//! rules: every `NAME.wasm` is a test, `NAME.json` beside it (if any) gives its
//! `args`, `env`, `exit_code` (default 0), `stdout` (checked only if given) and
//! the directory it wants preopened (`root`, or `dirs`).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One test of the suite.
#[derive(Clone, Debug)]
pub struct Test {
    /// `<language>/<name>`, e.g. `c/sock_shutdown-not_sock`: how the
    /// expected-failures list names it.
    pub id: String,
    /// The module's file name (the module's argv[0]).
    pub file_name: String,
    pub wasm: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub exit_code: i32,
    pub stdout: Option<String>,
    /// Directories the test wants preopened (relative to its folder), each
    /// with the guest path it gets: `root` at `/`, each of `dirs` at its
    /// own name.
    pub dirs: Vec<(String, String)>,
}

/// Why the suite cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: field {field:?} is {value}, expected {expected}")]
    Field {
        path: PathBuf,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("no *.wasm test found under {0}")]
    Empty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SuiteError + '_ {
    move |source| SuiteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every test under `root`, sorted by id. Test data folders (`*.dir`) are not
/// searched.
pub fn discover(root: &Path) -> Result<Vec<Test>, SuiteError> {
    let mut wasm_files = Vec::new();
    walk(root, &mut wasm_files)?;
    let mut tests = wasm_files
        .iter()
        .map(|wasm| load(wasm))
        .collect::<Result<Vec<_>, _>>()?;
    if tests.is_empty() {
        return Err(SuiteError::Empty(root.to_path_buf()));
    }
    tests.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tests)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            if path.extension().is_none_or(|ext| ext != "dir") {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|ext| ext == "wasm") {
            out.push(path);
        }
    }
    Ok(())
}

/// The suite's layout is `tests/<language>/testsuite/<target>/NAME.wasm`.
fn language_of(wasm: &Path) -> String {
    wasm.ancestors()
        .nth(3)
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn load(wasm: &Path) -> Result<Test, SuiteError> {
    let stem = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file_name = format!("{stem}.wasm");
    let mut test = Test {
        id: format!("{}/{stem}", language_of(wasm)),
        file_name,
        wasm: wasm.to_path_buf(),
        args: Vec::new(),
        env: Vec::new(),
        exit_code: 0,
        stdout: None,
        dirs: Vec::new(),
    };
    let json = wasm.with_extension("json");
    if !json.exists() {
        return Ok(test);
    }
    let text = fs::read_to_string(&json).map_err(io(&json))?;
    let spec: Value = serde_json::from_str(&text).map_err(|source| SuiteError::Json {
        path: json.clone(),
        source,
    })?;
    let bad = |field: &'static str, value: &Value, expected: &'static str| SuiteError::Field {
        path: json.clone(),
        field,
        value: value.to_string(),
        expected,
    };
    if let Some(args) = spec.get("args") {
        test.args = strings(args).ok_or_else(|| bad("args", args, "an array of strings"))?;
    }
    if let Some(env) = spec.get("env") {
        let map = env
            .as_object()
            .ok_or_else(|| bad("env", env, "an object"))?;
        for (key, value) in map {
            let value = value
                .as_str()
                .ok_or_else(|| bad("env", value, "string values"))?;
            test.env.push((key.clone(), value.to_string()));
        }
    }
    if let Some(code) = spec.get("exit_code") {
        test.exit_code = code
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .ok_or_else(|| bad("exit_code", code, "an i32"))?;
    }
    if let Some(stdout) = spec.get("stdout") {
        let text = stdout
            .as_str()
            .ok_or_else(|| bad("stdout", stdout, "a string"))?;
        test.stdout = Some(text.to_string());
    }
    if let Some(root) = spec.get("root") {
        let dir = root.as_str().ok_or_else(|| bad("root", root, "a string"))?;
        test.dirs.push((dir.to_string(), "/".to_string()));
    }
    if let Some(dirs) = spec.get("dirs") {
        let dirs = strings(dirs).ok_or_else(|| bad("dirs", dirs, "an array of strings"))?;
        test.dirs
            .extend(dirs.into_iter().map(|dir| (dir.clone(), dir)));
    }
    Ok(test)
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect()
}
