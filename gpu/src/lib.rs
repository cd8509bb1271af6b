//! frameflow's accelerator layer: which device a job's operators run on.
//!
//! This build carries no CUDA code yet, so `--device auto` resolves to the
//! CPU and says why, and `--device cuda` is refused with the same reason
//! rather than silently running on the CPU. CUDA kernels (cudarc, loaded at
//! run time behind the `cuda` feature) come with the GPU issue.

use std::fmt;
use std::str::FromStr;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A GPU where one answers, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            _ => Err(format!("unknown device `{text}`; choose auto, cpu or cuda")),
        }
    }
}

/// Where operators will run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu {
        /// Why not a GPU, when one was allowed: said once to the user.
        fallback_reason: Option<String>,
    },
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu { .. } => f.write_str("cpu"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no CUDA device available: {0}")]
    NoCuda(String),
}

const NO_CUDA_BUILD: &str = "this build of frameflow has no CUDA support";

/// Resolves the user's choice to a device.
pub fn resolve(choice: DeviceChoice) -> Result<Device, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu { fallback_reason: None }),
        DeviceChoice::Auto => Ok(Device::Cpu { fallback_reason: Some(NO_CUDA_BUILD.to_owned()) }),
        DeviceChoice::Cuda => Err(DeviceError::NoCuda(NO_CUDA_BUILD.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_the_cpu_with_a_reason_and_cuda_is_refused() {
        assert!(matches!(resolve(DeviceChoice::Auto), Ok(Device::Cpu { fallback_reason: Some(_) })));
        assert!(resolve(DeviceChoice::Cuda).is_err());
        assert_eq!("GPU".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda));
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }
}
