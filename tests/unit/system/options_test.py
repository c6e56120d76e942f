#!/usr/bin/env python3
# kiln's command-line options with QEMU's meaning, checked on a running
# process with tiny synthetic kernels (no Linux boot): -rtc base=, -serial
# none/null/file:/unix:server[,nowait], -pidfile locking, -daemonize
# detaching, -name process=/debug-threads=, -D/-d, -machine/-cpu/-smp
# accepted forms, -accel tcg's note. Usage: options_test.py PATH/TO/kiln
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_process import HALT, POWEROFF, ProcessTest, out_text  # noqa: E402

T = ProcessTest('kiln-options-test-')
KILN, TMP = T.kiln, T.tmp
check, run, wait_for, kernel = T.check, T.run, T.wait_for, T.kernel


def out_cmos_bcd(reg):
    # mov al,reg; out 0x70,al; in al,0x71; mov ah,al; shr al,4; add al,'0';
    # out dx,al; mov al,ah; and al,0xf; add al,'0'; out dx,al
    return (b'\xb0' + bytes([reg]) + b'\xe6\x70\xe4\x71\x88\xc4\xc0\xe8\x04\x04\x30\xee'
            b'\x88\xe0\x24\x0f\x04\x30\xee')


BASE = ['-m', '32', '-display', 'none']


def serial_run(code, extra=(), env=None):
    """Runs `code` then powers off; returns (status, COM1 output, stderr)."""
    path = os.path.join(TMP, 'com1-%d.txt' % len(os.listdir(TMP)))
    r = run(BASE + ['-kernel', kernel(code + POWEROFF + HALT), '-serial', 'file:' + path] + list(extra), env=env)
    out = open(path).read() if os.path.exists(path) else ''
    return r.returncode, out, r.stderr


# -rtc base=DATE: the guest's CMOS clock starts there (BCD year, month, day, hour).
date_code = out_text(b'') + b''.join(out_cmos_bcd(reg) for reg in (9, 8, 7, 4)) + out_text(b'\n')
status, out, err = serial_run(date_code, ['-rtc', 'base=2006-06-17T16:01:21'])
check(status == 0 and out == '06061716\n', '-rtc base=DATE: %r %r' % (out, err))
status, out, err = serial_run(date_code, ['-rtc', 'base=2031-01-02'])
check(status == 0 and out == '31010200\n', '-rtc base=DAY: %r %r' % (out, err))


# base=utc and base=localtime against the host clock, with a time zone 14
# hours east of UTC so the two differ.
def expected(offset_s):
    t = time.gmtime(time.time() + offset_s)
    return '%02d%02d%02d%02d\n' % (t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour)


env = dict(os.environ, TZ='Etc/GMT-14')
for base, offset in (('utc', 0), ('localtime', 14 * 3600)):
    before = expected(offset)
    status, out, err = serial_run(date_code, ['-rtc', 'base=' + base], env=env)
    check(status == 0 and out in (before, expected(offset)), '-rtc base=%s: %r (expected %r)' % (base, out, before))

# -serial none leaves COM1 out; the next -serial is COM2 (0x2f8). COM1's
# status port then floats (0xff), so the guest prints that instead.
lsr_code = (out_text(b'B', 0x2f8) + b'\x66\xba\xfd\x03\xec'  # mov dx,0x3fd; in al,dx
            + b'\x66\xba\xf8\x02\x3c\xff\x75\x03\xb0\x21\xee')  # mov dx,0x2f8; cmp al,0xff; jne; out '!'
path2 = os.path.join(TMP, 'com2.txt')
r = run(BASE + ['-kernel', kernel(lsr_code + POWEROFF + HALT), '-serial', 'none', '-serial', 'file:' + path2])
check(r.returncode == 0 and open(path2).read() == 'B!', '-serial none then file: %r %r' % (
    open(path2).read() if os.path.exists(path2) else None, r.stderr))
# -serial null: the port exists (its LSR is not 0xff) and output goes nowhere.
r = run(BASE + ['-kernel', kernel(lsr_code + POWEROFF + HALT), '-serial', 'null', '-serial', 'file:' + path2])
check(r.returncode == 0 and open(path2).read() == 'B', '-serial null: %r' % open(path2).read())

# -serial file: truncates, as QEMU's does.
path = os.path.join(TMP, 'old.txt')
with open(path, 'w') as f:
    f.write('stale content from an earlier run\n')
r = run(BASE + ['-kernel', kernel(out_text(b'new\n') + POWEROFF + HALT), '-serial', 'file:' + path])
check(r.returncode == 0 and open(path).read() == 'new\n', '-serial file: truncates: %r' % open(path).read())

# -serial unix:PATH,server,nowait: the guest runs at once, with no client
# (it reaches its COM2 output), and a client can connect later.
sock_path = os.path.join(TMP, 'console.sock')
com2 = os.path.join(TMP, 'nowait-com2.txt')
p = subprocess.Popen([KILN] + BASE + ['-kernel', kernel(out_text(b'early\n') + out_text(b'ran', 0x2f8) + HALT),
                                      '-serial', 'unix:%s,server,nowait' % sock_path, '-serial', 'file:' + com2],
                     stderr=subprocess.PIPE, text=True)
check(wait_for(lambda: os.path.exists(com2) and open(com2).read() == 'ran'), 'nowait: the guest ran with no client')
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sock_path)
    connected = True
except OSError:
    connected = False
s.close()
check(connected, 'nowait: a client connects later')
p.send_signal(signal.SIGTERM)
p.wait(timeout=30)

# -serial unix:PATH,server (wait): kiln waits for a client before the guest
# starts, as QEMU does, so the client sees the first byte.
sock_path2 = os.path.join(TMP, 'console2.sock')
p = subprocess.Popen([KILN] + BASE + ['-kernel', kernel(out_text(b'first\n') + HALT),
                                      '-serial', 'unix:%s,server' % sock_path2],
                     stderr=subprocess.PIPE, text=True)
line = p.stderr.readline()
check(re.match(r'kiln: -serial: waiting for connection on: disconnected:unix:.*console2.sock,server=on', line)
      or 'waiting for connection' in line, 'server wait announcement %r' % line)
s = socket.socket(socket.AF_UNIX)
s.connect(sock_path2)
s.settimeout(30)
got = b''
try:
    while b'first\n' not in got:
        chunk = s.recv(100)
        if not chunk:
            break
        got += chunk
except socket.timeout:
    pass
s.close()
check(got == b'first\n', 'server wait: the client got the guest output from its start: %r' % got)
p.send_signal(signal.SIGTERM)
p.wait(timeout=30)

# -pidfile: held with a lock, so a second kiln with the same pidfile fails.
pidfile = os.path.join(TMP, 'kiln.pid')
p = subprocess.Popen([KILN] + BASE + ['-S', '-kernel', kernel(HALT), '-serial', 'null', '-pidfile', pidfile],
                     stderr=subprocess.PIPE, text=True)
check(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read() == '%d\n' % p.pid), 'pidfile written')
r = run(BASE + ['-S', '-kernel', kernel(HALT), '-serial', 'null', '-pidfile', pidfile])
check(r.returncode == 1 and r.stderr == 'kiln: cannot create PID file: Cannot lock pid file: '
      'Resource temporarily unavailable\n', 'second instance refused: %r' % r.stderr)
check(open(pidfile).read() == '%d\n' % p.pid, 'the first instance keeps its pidfile')
# -name process= and debug-threads=on name the process and the vCPU thread.
p2 = subprocess.Popen([KILN] + BASE + ['-kernel', kernel(b'\xeb\xfe'), '-serial', 'null', '-name',
                                       'vm1,process=kiln-vm1,debug-threads=on'], stderr=subprocess.PIPE, text=True)


def thread_names(pid):
    names = []
    try:
        for t in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/comm' % (pid, t)) as f:
                names.append(f.read().strip())
    except OSError:
        pass
    return names


check(wait_for(lambda: 'CPU 0/INTERP' in thread_names(p2.pid)), '-name debug-threads=on: %r' % thread_names(p2.pid))
check(open('/proc/%d/comm' % p2.pid).read().strip() == 'kiln-vm1', '-name process=')
p2.send_signal(signal.SIGTERM)
p2.wait(timeout=30)
# SIGTERM's line names the sender as QEMU's does.
p.send_signal(signal.SIGTERM)
err = p.communicate(timeout=30)[1]
check(re.fullmatch(r'kiln: terminating on signal 15 from pid %d \(python3?[^)]*\)\n' % os.getpid(), err) is not None,
      'signal line %r' % err)
check(not os.path.exists(pidfile), 'pidfile removed at exit')

# -daemonize: detached (not a session leader: it can never get a
# controlling terminal), working directory /, pidfile by absolute path.
cwd = os.path.join(TMP, 'cwd')
os.mkdir(cwd)
r = subprocess.run([KILN] + BASE + ['-daemonize', '-kernel', kernel(HALT), '-serial', 'null', '-pidfile', 'd.pid'],
                   cwd=cwd, capture_output=True, text=True, timeout=60)
check(r.returncode == 0, '-daemonize: %r' % r.stderr)
dpid_path = os.path.join(cwd, 'd.pid')
if os.path.exists(dpid_path):
    dpid = int(open(dpid_path).read())
    stat = open('/proc/%d/stat' % dpid).read().rsplit(')', 1)[1].split()
    check(int(stat[3]) != dpid, 'daemon is not a session leader')
    check(int(stat[4]) == 0, 'daemon has no controlling terminal')
    check(os.readlink('/proc/%d/cwd' % dpid) == '/', 'daemon runs in /')
    os.kill(dpid, signal.SIGTERM)
    check(wait_for(lambda: not os.path.exists(dpid_path)), 'daemon removed its relative pidfile')
else:
    check(False, '-daemonize wrote no pidfile')

# -D/-d: the log file gets the items asked for.
log = os.path.join(TMP, 'kiln.log')
status, out, err = serial_run(out_text(b'x'), ['-D', log, '-d', 'guest_errors'])
check(status == 0 and os.path.exists(log), '-D creates the log file: %r' % err)

# Accepted spellings with QEMU's meaning.
for extra in (['-machine', 'pc'], ['-M', 'pc-i440fx-7.2'], ['-machine', 'type=pc,accel=tcg'], ['-smp', '1'],
              ['-smp', 'cpus=1,sockets=1,cores=1,threads=1'], ['-cpu', 'qemu64'], ['-m', 'size=64M'],
              ['-accel', 'interp'], ['-name', 'guest=demo'], ['-rtc', 'base=utc,clock=vm,driftfix=slew'],
              ['-no-reboot'], ['-nodefaults', '-serial', 'null']):
    status, out, err = serial_run(out_text(b'ok'), extra)
    check(status == 0 and out == 'ok', 'accepted: %s -> %d %r %r' % (' '.join(extra), status, out, err))
# -no-shutdown: a guest power-off stops the VM but kiln stays (QEMU's
# "shutdown" run state) until it is told to quit.
ns_out = os.path.join(TMP, 'noshutdown.txt')
p = subprocess.Popen([KILN] + BASE + ['-kernel', kernel(out_text(b'off') + POWEROFF + HALT), '-no-shutdown',
                                      '-serial', 'file:' + ns_out], stderr=subprocess.PIPE, text=True)
check(wait_for(lambda: os.path.exists(ns_out) and open(ns_out).read() == 'off'), '-no-shutdown: guest ran')
time.sleep(1)
check(p.poll() is None, '-no-shutdown: kiln still running after the guest powered off')
p.send_signal(signal.SIGTERM)
check(p.wait(timeout=30) == 0, '-no-shutdown: SIGTERM ends it with 0')
status, out, err = serial_run(out_text(b'ok'), ['-accel', 'tcg'])
check(status == 0 and err == 'kiln: warning: -accel tcg: Kiln has no TCG; using its interpreter instead\n',
      '-accel tcg note: %r' % err)

T.finish()
