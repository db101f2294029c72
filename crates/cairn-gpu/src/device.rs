//! The GPU device: adapter and device acquisition, error capture and device loss.
//!
//! wgpu's default handler panics on a validation error; Cairn never panics on input, so
//! errors are recorded here and turned into a failed run. Loss (a driver reset, the
//! browser reclaiming the GPU, or `destroy` for tests) is recorded too, so the caller can
//! fall back to the CPU build.

use crate::GpuError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A device and queue with Cairn's error and loss bookkeeping. Clones share the device (a
/// page keeps one to destroy it from a test hook while a run holds the session).
#[derive(Clone)]
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    /// "name (backend, device type)" of the adapter, for reports.
    pub adapter_info: String,
    lost: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    /// The first adapter the platform offers (WebGPU in the browser; Vulkan, Metal or DX12
    /// natively, software adapters such as lavapipe included), or why there is none.
    pub async fn acquire() -> Result<Gpu, GpuError> {
        let instance = wgpu::Instance::new(&wgpu::InstanceDescriptor::from_env_or_default());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
            })
            .await
            .map_err(|e| GpuError::NoAdapter(format!("{e} (hint: natively install a Vulkan driver, e.g. mesa-vulkan-drivers for lavapipe; in a browser, WebGPU needs a secure context and an enabled GPU)")))?;
        let info = adapter.get_info();
        let adapter_info = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        // The adapter's own limits: a real GPU allows larger storage buffers than the defaults.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("cairn"),
                required_features: wgpu::Features::empty(),
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device(format!("request_device on {adapter_info}: {e}")))?;
        let lost = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |_reason, _msg| flag.store(true, Ordering::SeqCst));
        let slot = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        Ok(Gpu { device, queue, adapter_info, lost, error })
    }

    /// True once the device is lost; every later run fails with [`GpuError::DeviceLost`].
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Destroys the device, as a driver reset would: the test hook for the fallback path.
    pub fn destroy(&self) {
        self.device.destroy();
        self.lost.store(true, Ordering::SeqCst);
    }

    /// Fails if the device was lost or recorded an error since the last check.
    pub(crate) fn check(&self) -> Result<(), GpuError> {
        if self.is_lost() {
            return Err(GpuError::DeviceLost("the GPU device was lost (hint: run on the CPU build)".into()));
        }
        match self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(GpuError::Device(e)),
            None => Ok(()),
        }
    }

    /// Copies `src` (COPY_SRC) into fresh memory: submits the pending work and awaits the map.
    pub(crate) async fn read(&self, encoder: wgpu::CommandEncoder, staging: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        // Natively callbacks run inside poll; in the browser the event loop runs them.
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Device(format!("poll: {e}")))?;
        let mapped = rx.await.map_err(|_| GpuError::DeviceLost("the read-back was dropped (device lost?)".into()))?;
        mapped.map_err(|e| if self.is_lost() { GpuError::DeviceLost(e.to_string()) } else { GpuError::Device(e.to_string()) })?;
        let bytes = staging.get_mapped_range(..).to_vec();
        staging.unmap();
        self.check()?;
        Ok(bytes)
    }
}
