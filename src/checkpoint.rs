//! Atomic file writes and safetensors checkpoints with metadata.
//!
//! Every file ncood writes goes through `write_atomic`: a temporary file in the same folder,
//! fsync, rename over the target, fsync of the folder. A crash or kill leaves either the old file or
//! the new one, never a torn one. tch's own safetensors writer takes no metadata and writes in
//! place, hence this module.
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use tch::{Device, Tensor};

/// A temporary path beside `path` (same folder, so the final rename is atomic).
fn temp_path(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Makes a fully written temporary file durable and moves it over `path`.
fn commit(tmp: &Path, path: &Path) -> Result<()> {
    let io = |e| Error::io(path, e);
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(tmp, path).map_err(io)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all(); // best effort: some file systems refuse fsync on folders
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    drop(f);
    commit(&tmp, path)
}

/// A tensor's bytes, owned, for the safetensors serializer.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn owned(t: &Tensor) -> Result<Owned> {
    let t = t.to_device(Device::Cpu).contiguous();
    let dtype = Dtype::try_from(t.kind())?;
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, numel)?;
    Ok(Owned {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        bytes,
    })
}

/// Serialises named tensors and string metadata to safetensors bytes.
pub fn to_bytes(
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<Vec<u8>> {
    let owned: Vec<(String, Owned)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), owned(t)?)))
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(
        owned.iter().map(|(n, o)| (n.as_str(), o)),
        &Some(metadata.clone()),
    )
    .map_err(|e| Error::Torch(tch::TchError::Convert(format!("safetensors: {e}"))))
}

/// Writes a safetensors file atomically.
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    write_atomic(path, &to_bytes(tensors, metadata)?)
}

/// Reads a safetensors file: its tensors (on the CPU) and metadata.
pub fn read(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file: {e:?}")))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::bad_file(path, format!("not a valid safetensors file: {e:?}")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let t = Tensor::try_from(view)
            .map_err(|e| Error::bad_file(path, format!("tensor {name}: {e}")))?;
        tensors.insert(name, t);
    }
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

/// Copies `src` into every variable of `vs` whose name it holds (prefixed by `prefix`), checking
/// shapes; every variable must be present.
pub fn load_into(
    vs: &tch::nn::VarStore,
    src: &HashMap<String, Tensor>,
    prefix: &str,
    path: &Path,
) -> Result<()> {
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let key = format!("{prefix}{name}");
            let t = src
                .get(&key)
                .ok_or_else(|| Error::bad_file(path, format!("missing tensor {key}")))?;
            if t.size() != var.size() || t.kind() != var.kind() {
                return Err(Error::ShapeMismatch {
                    what: format!("{} tensor {key}", path.display()),
                    expected: format!("{:?} {:?}", var.size(), var.kind()),
                    got: format!("{:?} {:?}", t.size(), t.kind()),
                });
            }
            var.copy_(t);
        }
        Ok(())
    })
}

/// Writes a tensor as .npy atomically (tch writes the format; `commit` makes it atomic).
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let tmp = temp_path(path);
    t.to_device(Device::Cpu).contiguous().write_npy(&tmp)?;
    commit(&tmp, path)
}
