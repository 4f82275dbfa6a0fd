// SPDX-License-Identifier: GPL-2.0

//! vhost-rs: vhost-net in Rust.
//!
//! Registers `/dev/vhost-rs-net`, which speaks the vhost / vhost-net ioctl ABI of Linux 7.3
//! (the numbers, structs, feature bits and errno values of `/dev/vhost-net`), so that QEMU
//! can use it with `-netdev tap,vhost=on,vhostfd=N`.

mod dev;
mod guest;
mod mem;
mod net;
mod ring;
mod stats;
mod sys;
mod uapi;
mod user;
mod zerocopy;

use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    seq_file::SeqFile,
    sync::{Arc, ArcBorrow},
};

module! {
    type: VhostRsModule,
    name: "vhost_rs",
    authors: ["The vhost-rs developers"],
    description: "Host kernel accelerator for virtio net, in Rust",
    license: "GPL",
}

#[pin_data]
struct VhostRsModule {
    /// Dropped first: no device can be opened while the debugfs root goes.
    #[pin]
    _miscdev: MiscDeviceRegistration<net::VhostNet>,
    _debugfs: sys::DebugfsRoot,
}

impl kernel::InPlaceModule for VhostRsModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let options = MiscDeviceOptions {
            name: c"vhost-rs-net",
        };
        try_pin_init!(Self {
            _debugfs: sys::DebugfsRoot::new(),
            _miscdev <- MiscDeviceRegistration::register(options),
        })
    }
}

#[vtable]
impl MiscDevice for net::VhostNet {
    type Ptr = Arc<net::VhostNet>;

    fn open(file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Self>> {
        let msgs = dev::IotlbMsgs::new()?;
        let dev = Arc::pin_init(
            net::VhostNet::new(stats::DebugDir::new()?, msgs),
            GFP_KERNEL,
        )?;
        sys::file_add_poll(file);
        Ok(dev)
    }

    /// `vhost_chr_read_iter()`: the device IOTLB's next miss.
    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let nonblock = sys::kiocb_nonblock(kiocb.as_raw());
        kiocb.file().read_msg(iov, nonblock)
    }

    /// `vhost_chr_write_iter()`: an update or invalidation of the device IOTLB.
    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        kiocb.file().write_msg(iov)
    }

    fn release(device: Arc<Self>, _file: &File) {
        device.release();
    }

    fn ioctl(me: ArcBorrow<'_, Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        me.ioctl(cmd, arg as u64)
    }

    /// Per-queue counters: packets, bytes, drops, kicks, calls, errors, busy polls.
    fn show_fdinfo(me: ArcBorrow<'_, Self>, m: &SeqFile, _file: &File) {
        me.show_fdinfo(m);
    }

    /// vhost-net uses `compat_ptr_ioctl`: the same structs, the pointer zero-extended.
    #[cfg(CONFIG_COMPAT)]
    fn compat_ioctl(me: ArcBorrow<'_, Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        me.ioctl(cmd, arg as u64)
    }
}
