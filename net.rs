// SPDX-License-Identifier: GPL-2.0

//! The vhost-net device: what `drivers/vhost/net.c` adds to the generic vhost device —
//! feature negotiation, ownership with its net-side state, and the socket backend of each
//! queue (AF_PACKET raw sockets, tun/tap and macvtap queues).

use crate::{
    dev::{Dev, NVQS},
    sys::{self, Socket},
    uapi::*,
    user,
};
use kernel::{new_mutex, prelude::*, sync::Mutex};

/// Feature bits we offer, by word of the 128-bit feature array. A bit is offered only once
/// its data path works; until then this is empty, where vhost_net.ko offers VHOST_FEATURES
/// (NOTIFY_ON_EMPTY, INDIRECT_DESC, EVENT_IDX, LOG_ALL, ANY_LAYOUT, VERSION_1),
/// VHOST_NET_F_VIRTIO_NET_HDR, MRG_RXBUF, ACCESS_PLATFORM, RING_RESET, IN_ORDER and the UDP
/// tunnel GSO bits.
const NET_FEATURES: Features = [0, 0];

/// Backend features we offer: none yet (vhost_net.ko offers IOTLB_MSG_V2, which belongs to
/// the device IOTLB that ACCESS_PLATFORM needs).
const NET_BACKEND_FEATURES: u64 = 0;

/// `EPOLLERR`: a tun/tap file with no device attached polls as an error.
const EPOLLERR: u32 = 0x8;

/// Largest feature-array tail we scan between two scheduling points.
const RESCHED_EVERY: u64 = 4096;

/// One open `/dev/vhost-rs-net`.
#[pin_data]
pub(crate) struct VhostNet {
    #[pin]
    dev: Mutex<Dev>,
}

impl VhostNet {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            dev <- new_mutex!(Dev::new(), "VhostNet::dev"),
        })
    }

    /// `vhost_net_ioctl()`
    pub(crate) fn ioctl(&self, cmd: u32, arg: u64) -> Result<isize> {
        match cmd {
            VHOST_NET_SET_BACKEND => {
                let f = VringFile::from_bytes(&user::read(arg)?);
                self.set_backend(f.index, f.fd)?;
            }
            VHOST_GET_FEATURES => user::write(arg, &NET_FEATURES[0].to_ne_bytes())?,
            VHOST_SET_FEATURES => {
                let features = u64::from_ne_bytes(user::read(arg)?);
                if features & !NET_FEATURES[0] != 0 {
                    return Err(EOPNOTSUPP);
                }
                self.set_features([features, 0])?;
            }
            VHOST_GET_FEATURES_ARRAY => get_features_array(arg)?,
            VHOST_SET_FEATURES_ARRAY => {
                let features = read_features_array(arg)?;
                self.set_features(features)?;
            }
            VHOST_GET_BACKEND_FEATURES => user::write(arg, &NET_BACKEND_FEATURES.to_ne_bytes())?,
            VHOST_SET_BACKEND_FEATURES => {
                let features = u64::from_ne_bytes(user::read(arg)?);
                if features & !NET_BACKEND_FEATURES != 0 {
                    return Err(EOPNOTSUPP);
                }
                let mut dev = self.dev.lock();
                for vq in dev.vqs.iter_mut() {
                    vq.acked_backend_features = features;
                }
            }
            VHOST_RESET_OWNER => self.reset_owner()?,
            VHOST_SET_OWNER => self.dev.lock().set_owner()?,
            _ => {
                let mut dev = self.dev.lock();
                match dev.dev_ioctl(cmd, arg) {
                    Some(r) => r?,
                    None => dev.vring_ioctl(cmd, arg)?,
                }
            }
        }
        Ok(0)
    }

    /// `vhost_net_set_features()`: no owner needed, as in vhost-net.
    fn set_features(&self, features: Features) -> Result {
        // The virtio-net header is 12 bytes with MRG_RXBUF or VERSION_1, else 10 (5.1.6).
        let hdr_len = if has_feature(&features, VIRTIO_NET_F_MRG_RXBUF)
            || has_feature(&features, VIRTIO_F_VERSION_1)
        {
            12
        } else {
            10
        };
        let (vhost_hlen, sock_hlen) = if has_feature(&features, VHOST_NET_F_VIRTIO_NET_HDR) {
            (hdr_len, 0)
        } else {
            (0, hdr_len)
        };
        let mut dev = self.dev.lock();
        if has_feature(&features, VHOST_F_LOG_ALL) && !dev.log_access_ok() {
            return Err(EFAULT);
        }
        for vq in dev.vqs.iter_mut() {
            vq.acked_features = features;
            vq.vhost_hlen = vhost_hlen;
            vq.sock_hlen = sock_hlen;
        }
        Ok(())
    }

    /// `vhost_net_reset_owner()`: back to the state of a fresh open, with an empty memory
    /// table; the backends' sockets are released after the lock is dropped.
    fn reset_owner(&self) -> Result {
        let backends = {
            let mut dev = self.dev.lock();
            dev.check_owner()?;
            let backends = dev.take_backends();
            dev.reset_owner();
            backends
        };
        drop(backends);
        Ok(())
    }

    /// `vhost_net_set_backend()`: attaches `fd`'s socket to queue `index`, or detaches with -1.
    fn set_backend(&self, index: u32, fd: i32) -> Result {
        let old = {
            let mut dev = self.dev.lock();
            dev.check_owner()?;
            let index = index as usize;
            if index >= NVQS {
                return Err(ENOBUFS);
            }
            let Dev {
                umem, vqs, log_ctx, ..
            } = &mut *dev;
            let vq = &mut vqs[index];
            // Verify that the ring has been set up correctly.
            if !vq.access_ok(umem.as_ref()) {
                return Err(EFAULT);
            }
            let sock = get_socket(fd)?;
            let same = match (&sock, &vq.backend) {
                (Some(a), Some(b)) => a.same_as(b),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Ok(());
            }
            let old = core::mem::replace(&mut vq.backend, sock);
            if let Err(e) = vq
                .init_access(log_ctx.as_ref())
                .and_then(|()| enable_vq(vq.backend.as_ref()))
            {
                // Put the old backend back; the new socket is released on return.
                let _new = core::mem::replace(&mut vq.backend, old);
                return Err(e);
            }
            old
        };
        drop(old);
        Ok(())
    }
}

/// `get_socket()`: -1 detaches; a raw packet socket, else a tun/tap or macvtap queue; any
/// other fd is `ENOTSOCK`, whatever the lookups said.
fn get_socket(fd: i32) -> Result<Option<Socket>> {
    if fd == -1 {
        return Ok(None);
    }
    if let Ok(sock) = Socket::raw(fd) {
        return Ok(Some(sock));
    }
    if let Ok(sock) = Socket::tap(fd) {
        return Ok(Some(sock));
    }
    Err(ENOTSOCK)
}

/// `vhost_net_enable_vq()`: a backend that polls as an error (a tun file with no device
/// attached) is refused with `EINVAL`, as `vhost_poll_start()` does.
fn enable_vq(sock: Option<&Socket>) -> Result {
    match sock {
        Some(sock) if sock.poll_mask() & EPOLLERR != 0 => Err(EINVAL),
        _ => Ok(()),
    }
}

/// `VHOST_GET_FEATURES_ARRAY`: `{ u64 count; u64 features[count]; }`; words past ours are
/// zeroed.
fn get_features_array(arg: u64) -> Result {
    let count = u64::from_ne_bytes(user::read(arg)?);
    let copied = count.min(FEATURES_U64S as u64) as usize;
    let mut words = [0u8; 8 * FEATURES_U64S];
    for (i, w) in NET_FEATURES.iter().enumerate() {
        words[8 * i..8 * i + 8].copy_from_slice(&w.to_ne_bytes());
    }
    let base = arg.wrapping_add(8);
    user::write(base, &words[..8 * copied])?;
    let tail = (count - copied as u64).saturating_mul(8);
    if sys::clear_user(base.wrapping_add(8 * copied as u64), tail) != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// `VHOST_SET_FEATURES_ARRAY`: reads the array; any bit we do not offer, including any bit
/// beyond our 128, is `EOPNOTSUPP`.
fn read_features_array(arg: u64) -> Result<Features> {
    let count = u64::from_ne_bytes(user::read(arg)?);
    let copied = count.min(FEATURES_U64S as u64) as usize;
    let mut words = [0u8; 8 * FEATURES_U64S];
    user::read_into(arg.wrapping_add(8), &mut words[..8 * copied])?;
    // The tail is user-sized: read it word by word as vhost-net does, but let the scheduler
    // and a fatal signal in, so a huge count cannot pin the CPU.
    for i in copied as u64..count {
        let addr = arg.wrapping_add(8).wrapping_add(i.wrapping_mul(8));
        if u64::from_ne_bytes(user::read(addr)?) != 0 {
            return Err(EOPNOTSUPP);
        }
        if (i - copied as u64) % RESCHED_EVERY == RESCHED_EVERY - 1 {
            if kernel::current!().signal_pending() {
                return Err(EINTR);
            }
            sys::cond_resched();
        }
    }
    let mut features = [0u64; FEATURES_U64S];
    for (i, f) in features.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&words[8 * i..8 * i + 8]);
        *f = u64::from_ne_bytes(w);
        if *f & !NET_FEATURES[i] != 0 {
            return Err(EOPNOTSUPP);
        }
    }
    Ok(features)
}
