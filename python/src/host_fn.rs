//! Python callables as host functions of a WASM run. A declaration arrives as
//! (module, name, parameter types, result types, callable) with types named
//! "i32", "i64", "f32", "f64", "bytes". The callable gets one positional
//! argument per parameter (int, float or bytes) and returns None (no
//! results), one value, or a tuple of them in declaration order.
//!
//! The callback runs on the library thread that waits for the run, and takes
//! the GIL only while the callable runs; an exception (or a return that does
//! not convert) traps the module with "ExceptionType: message".

use kvmsandbox::agent::{HostCall, HostFunctions, HostReturn, HostType, Val};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

/// One declaration as the native `run_wasm` takes it.
pub type HostFnArg = (String, String, Vec<String>, Vec<String>, Py<PyAny>);

fn host_type(name: &str) -> PyResult<HostType> {
    Ok(match name {
        "i32" => HostType::I32,
        "i64" => HostType::I64,
        "f32" => HostType::F32,
        "f64" => HostType::F64,
        "bytes" => HostType::Bytes,
        other => {
            return Err(PyValueError::new_err(format!(
                "host function type {other:?} is not one of i32, i64, f32, f64, bytes"
            )))
        }
    })
}

/// The host functions of a run, from the Python declarations.
pub fn host_functions(decls: Vec<HostFnArg>) -> PyResult<HostFunctions> {
    let mut h = HostFunctions::new();
    for (module, name, params, results, callable) in decls {
        let p = params
            .iter()
            .map(|t| host_type(t))
            .collect::<PyResult<Vec<_>>>()?;
        let r = results
            .iter()
            .map(|t| host_type(t))
            .collect::<PyResult<Vec<_>>>()?;
        let (pc, rc) = (p.clone(), r.clone());
        h.add(&module, &name, &p, &r, move |call| {
            call_python(&callable, &pc, &rc, call)
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    Ok(h)
}

fn call_python(
    callable: &Py<PyAny>,
    params: &[HostType],
    results: &[HostType],
    call: &HostCall<'_>,
) -> Result<HostReturn, String> {
    Python::attach(|py| {
        let args = arguments(py, params, call).map_err(|e| e.to_string())?;
        let tuple = PyTuple::new(py, args).map_err(|e| e.to_string())?;
        let value = callable.bind(py).call1(tuple).map_err(|e| e.to_string())?;
        returned(results, &value).map_err(|e| e.to_string())
    })
}

/// The callable's positional arguments, in declaration order.
fn arguments<'py>(
    py: Python<'py>,
    params: &[HostType],
    call: &HostCall<'_>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let (mut scalars, mut buffers) = (call.args.iter(), call.buffers.iter());
    let mut out = Vec::new();
    for t in params {
        let v = if *t == HostType::Bytes {
            let b = buffers.next().map_or(&[][..], Vec::as_slice);
            PyBytes::new(py, b).into_any()
        } else {
            match scalars.next() {
                Some(Val::I32(x)) => x.into_pyobject(py)?.into_any(),
                Some(Val::I64(x)) => x.into_pyobject(py)?.into_any(),
                Some(Val::F32(x)) => x.into_pyobject(py)?.into_any(),
                Some(Val::F64(x)) => x.into_pyobject(py)?.into_any(),
                None => return Err(PyValueError::new_err("missing argument")),
            }
        };
        out.push(v);
    }
    Ok(out)
}

/// What the callable returned, checked against the declared results.
fn returned(results: &[HostType], value: &Bound<'_, PyAny>) -> PyResult<HostReturn> {
    let items: Vec<Bound<'_, PyAny>> = match results.len() {
        0 if value.is_none() => Vec::new(),
        0 => {
            return Err(PyValueError::new_err(
                "the host function declares no results but returned a value",
            ))
        }
        1 => vec![value.clone()],
        n => {
            let t = value
                .cast::<PyTuple>()
                .map_err(|_| PyValueError::new_err(format!("expected a tuple of {n} results")))?;
            if t.len() != n {
                return Err(PyValueError::new_err(format!(
                    "expected {n} results, got {}",
                    t.len()
                )));
            }
            t.iter().collect()
        }
    };
    let mut ret = HostReturn::default();
    for (t, v) in results.iter().zip(items) {
        match t {
            HostType::I32 => ret.values.push(Val::I32(v.extract()?)),
            HostType::I64 => ret.values.push(Val::I64(v.extract()?)),
            HostType::F32 => ret.values.push(Val::F32(v.extract()?)),
            HostType::F64 => ret.values.push(Val::F64(v.extract()?)),
            HostType::Bytes => {
                let b = v
                    .cast::<PyBytes>()
                    .map_err(|_| PyValueError::new_err("a bytes result must be a bytes object"))?;
                ret.bytes = b.as_bytes().to_vec();
            }
        }
    }
    Ok(ret)
}
