# In-guest half of disk_test.py: runs from the CD-ROM (/cd/run.sh) in the
# test guest's busybox shell. Every result is one "KILN-T key=value ..."
# line; the host side compares them with what it reads from the images.
# Disks (the host attaches them in this order):
#   virtio (found by serial): VRAW raw, VQCOW qcow2 over a raw backing file,
#     VSNAP raw with snapshot=on, VRO raw with readonly=on, VFS4 raw for
#     mkfs.ext4, VWERR raw with werror=stop on a full filesystem
#   IDE (found by position; sdX names follow the order in which the two
#     channels finish probing, which varies): raw at primary master, qcow2
#     over a backing file at primary slave, the ISO this script is on
#     (sr0) at secondary master, raw for mke2fs -t ext2 at secondary slave
#     (in PIO mode)
t() { echo "KILN-T $*"; }
byserial() {
  for d in /sys/block/vd*; do
    [ "$(cat "$d/serial" 2>/dev/null)" = "$1" ] && echo "/dev/${d##*/}" && return
  done
  echo /dev/missing-"$1"
}
# libata puts IDE channel C, unit U at SCSI address C:0:U:0.
byposition() { echo "/dev/$(ls /sys/bus/scsi/devices/$1:0:$2:0/block/ 2>/dev/null | head -1)"; }
sum() { sha256sum | cut -d' ' -f1; }
uncached() { blockdev --flushbufs "$1" 2>/dev/null; echo 3 >/proc/sys/vm/drop_caches; }

# Writes 1 MiB of random bytes at 1 MiB, reads them back past the page cache,
# and hashes the whole disk for the host to compare.
pattern() {
  name=$1 dev=$2
  dd if=/dev/urandom of=/tmp/p bs=64k count=16 2>/dev/null
  dd if=/tmp/p of="$dev" bs=64k seek=16 conv=fsync 2>/dev/null
  wrc=$?
  uncached "$dev"
  t "$name dev=$dev write_rc=$wrc pattern=$(sum </tmp/p) readback=$(dd if="$dev" bs=64k skip=16 count=16 2>/dev/null | sum) disk=$(sum <"$dev")"
}

# mkfs, mount, copy files in, unmount, mount again and read them back.
filesystem() {
  name=$1 dev=$2 mkfs=$3 fstype=$4
  $mkfs "$dev" >/tmp/mkfs.log 2>&1
  mrc=$?
  mkdir -p /fs && mount -t "$fstype" "$dev" /fs
  mnt=$?
  cp /cd/data.bin /fs/data.bin && mkdir -p /fs/dir && cp /bin/busybox /fs/dir/busybox && cp -r /etc /fs/dir/
  crc=$?
  umount /fs && uncached "$dev" && mount -t "$fstype" -o ro "$dev" /fs
  t "$name dev=$dev mkfs_rc=$mrc mount_rc=$mnt copy_rc=$crc data=$(sum </fs/data.bin) busybox=$(sum </fs/dir/busybox) type=$(awk '$2=="/fs" {print $3}' /proc/mounts)"
  umount /fs
  t "$name-umount rc=$?"
  [ $mrc -ne 0 ] && cat /tmp/mkfs.log
}

t "start kernel=$(uname -r)"
t "cd data=$(sum </cd/data.bin) dev=$(sum </dev/sr0) size=$(cat /sys/block/sr0/size)"
pattern vraw "$(byserial VRAW)"
pattern vqcow "$(byserial VQCOW)"
pattern vsnap "$(byserial VSNAP)"
pattern ide-raw "$(byposition 0 0)"
pattern ide-qcow "$(byposition 0 1)"
ro=$(byserial VRO)
dd if=/dev/zero of="$ro" bs=4k count=1 conv=fsync 2>/dev/null
t "vro dev=$ro write_rc=$? ro_flag=$(cat /sys/block/${ro#/dev/}/ro) disk=$(sum <"$ro")"
# The ext4 disk runs on INTx: rebind its virtio-pci function with MSI/MSI-X
# disallowed (msi_bus=0), so the driver falls back to the legacy interrupt.
fs4=$(byserial VFS4)
pci=$(basename "$(dirname "$(readlink -f /sys/block/${fs4#/dev/}/device)")")
echo "$pci" >/sys/bus/pci/drivers/virtio-pci/unbind
echo 0 >/sys/bus/pci/devices/$pci/msi_bus
echo "$pci" >/sys/bus/pci/drivers/virtio-pci/bind
sleep 1
irq=$(cat /sys/bus/pci/devices/$pci/irq)
t "intx pci=$pci dev=$(byserial VFS4) msix=$(ls /sys/bus/pci/devices/$pci/msi_irqs 2>/dev/null | wc -l) irq=$irq line=$(grep "^ *$irq:" /proc/interrupts | tr -s ' ' _)"
filesystem vfs4 "$(byserial VFS4)" "/sbin/mkfs.ext4 -q -F" ext4
t "intx-after line=$(grep "^ *$irq:" /proc/interrupts | tr -s ' ' _)"
filesystem ide-fs2 "$(byposition 1 1)" "/sbin/mke2fs -q -F -t ext2" ext2
model() { sed "s/ *$//" "/sys/block/$1/device/model" | tr " " _; }
hd=$(byposition 0 0)
t "models hd=$(model ${hd#/dev/}) sr0=$(model sr0)"
# The host forces the secondary slave to PIO (libata.force=2.01:pio4), so
# the ext2 run used READ/WRITE MULTIPLE; the others use bus-master DMA.
t "xfer hd=$(cat /sys/class/ata_device/dev1.0/xfer_mode) fs2=$(cat /sys/class/ata_device/dev2.1/xfer_mode)"
t "done"
sync

# Last: a write to a disk whose image cannot grow. With werror=stop the VM
# pauses on the error, so the heartbeat stops and "werror-after" never comes.
( while :; do echo "KILN-HB"; sleep 1; done ) &
sleep 3
t "werror-start"
# 4 MiB at the end of the disk: past what a 1 MiB tmpfs holds, and past the
# file-size limit the host may set instead.
werr=$(byserial VWERR)
dd if=/dev/urandom of="$werr" bs=64k seek=$(($(cat /sys/block/${werr#/dev/}/size) / 128 - 64)) count=64 conv=fsync 2>/dev/null
t "werror-after rc=$?"
