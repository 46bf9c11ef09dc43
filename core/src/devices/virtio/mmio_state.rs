//! Capturing and applying a transport's [`TransportState`] (with its device's).
//!
//! While a device is activated its queues live in the device (the transport's
//! copies only answer register reads), so the ring positions come from
//! `VirtioDevice::active_queues`. Restoring hands the device its queues again
//! directly, without the Status-write path: that path would make the device
//! serve its rings at once, and device work belongs on the event loop. Instead
//! every ready queue's eventfd is written once, so the loop serves whatever the
//! guest had made available before the snapshot and the device had not taken.
//! Nothing raises an interrupt: whether the guest had one pending is in the
//! irqchip state.

use virtio_queue::{Queue, QueueState, QueueT};

use super::MmioTransport;
use crate::devices::virtio::device::ActivateContext;
use crate::devices::virtio::state::{
    DeviceState, DeviceStateError, QueueSnapshot, TransportState, TRANSPORT_STATE_VERSION,
};

impl MmioTransport {
    /// The transport's and its device's state. Refused while the device is not
    /// quiescent (a Status change still waits for the event loop, or the device
    /// holds work of its own). Call with the VM paused.
    pub fn save_state(&self) -> Result<DeviceState, DeviceStateError> {
        if self.has_pending() {
            return Err(DeviceStateError::NotQuiescent {
                device_type: self.device.device_type(),
                reason: "a device reset or activation waits for the event loop".into(),
            });
        }
        let device = self.device.save_state()?;
        let live = if self.activated {
            self.device.active_queues()
        } else {
            Vec::new()
        };
        let queues = self
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| QueueSnapshot::from(live.get(i).copied().unwrap_or_else(|| q.state())))
            .collect();
        Ok(DeviceState {
            transport: TransportState {
                version: TRANSPORT_STATE_VERSION,
                device_type: self.device.device_type(),
                status: self.status,
                device_features_sel: self.device_features_sel,
                driver_features_sel: self.driver_features_sel,
                driver_features: self.driver_features,
                accepted_features: self.accepted_features,
                queue_sel: self.queue_sel,
                activated: self.activated,
                needs_reset: self.interrupt.needs_reset(),
                interrupt_status: self.interrupt.status(),
                config_generation: 0,
                queues,
            },
            device,
        })
    }

    /// Whether `state` fits this transport and device; changes nothing.
    pub fn check_state(&self, state: &DeviceState) -> Result<(), DeviceStateError> {
        let t = &state.transport;
        if t.version != TRANSPORT_STATE_VERSION {
            return Err(DeviceStateError::Version {
                what: "virtio-mmio transport",
                found: t.version,
                expected: TRANSPORT_STATE_VERSION,
            });
        }
        let device_type = self.device.device_type();
        for found in [t.device_type, state.device.device_type()] {
            if found != device_type {
                return Err(DeviceStateError::DeviceType {
                    snapshot: found,
                    device: device_type,
                });
            }
        }
        let ours = self.device.queue_max_sizes();
        let theirs: Vec<u16> = t.queues.iter().map(|q| q.max_size).collect();
        if ours != theirs.as_slice() {
            return Err(DeviceStateError::QueueLayout {
                snapshot: theirs,
                device: ours.to_vec(),
            });
        }
        let queues = self.build_queues(t)?;
        if Self::serves(t) {
            if let Some(index) = queues.iter().position(|q| !q.is_valid(&self.mem)) {
                return Err(DeviceStateError::InvalidQueue {
                    index,
                    reason: "its rings are not in guest memory".into(),
                });
            }
        }
        self.device.check_state(&state.device)
    }

    /// Becomes the snapshotted transport and device (after [`Self::check_state`]
    /// semantics: a mismatch changes nothing). Pending Status work of the current
    /// guest is dropped; the device's own state is replaced as by a reset first.
    /// Call with the VM paused and guest memory already restored.
    pub fn restore_state(&mut self, state: &DeviceState) -> Result<(), DeviceStateError> {
        self.check_state(state)?;
        let t = &state.transport;
        let serves = Self::serves(t);
        let active = if serves {
            Some(ActivateContext {
                mem: self.mem.clone(),
                queues: self.build_queues(t)?,
                interrupt: self.interrupt.clone(),
            })
        } else {
            None
        };
        self.device.restore_state(&state.device, active)?;
        self.queues = self.build_queues(t)?;
        self.pending = super::Pending::default();
        self.status = t.status;
        self.device_features_sel = t.device_features_sel;
        self.driver_features_sel = t.driver_features_sel;
        self.driver_features = t.driver_features;
        self.accepted_features = t.accepted_features;
        self.queue_sel = t.queue_sel;
        self.activated = t.activated;
        self.interrupt.restore(t.interrupt_status, t.needs_reset);
        if serves {
            for (q, evt) in t.queues.iter().zip(&self.queue_evts) {
                if q.ready {
                    // A full counter still wakes the loop.
                    let _ = evt.write(1);
                }
            }
        }
        Ok(())
    }

    /// Whether the device served its queues at the snapshot.
    fn serves(t: &TransportState) -> bool {
        t.activated && !t.needs_reset
    }

    fn build_queues(&self, t: &TransportState) -> Result<Vec<Queue>, DeviceStateError> {
        t.queues
            .iter()
            .enumerate()
            .map(|(index, q)| {
                Queue::try_from(QueueState::from(*q)).map_err(|e| DeviceStateError::InvalidQueue {
                    index,
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}
