#!/usr/bin/env python3
# kiln as a process: exit statuses and exact error lines, SIGTERM, -pidfile,
# -daemonize, -S, -serial pty and file. Usage: process_test.py PATH/TO/kiln
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kiln_process import HALT, ProcessTest, out_text  # noqa: E402

T = ProcessTest('kiln-process-test-')
KILN, TMP = T.kiln, T.tmp
check, run, wait_for, kernel = T.check, T.run, T.wait_for, T.kernel
out_code = out_text

# Informational options and errors.
r = run(['-version'])
check(r.returncode == 0 and r.stdout.startswith('Kiln emulator version'), '-version')
r = run(['-fda', 'x.img'])
check(r.returncode == 1 and r.stderr == 'kiln: -fda: unsupported option\n', '-fda refused: %r' % r.stderr)
r = run(['-m', '1x', '-kernel', 'k'])
check(r.returncode == 1 and r.stderr == "kiln: -m 1x: invalid RAM size '1x' (expected a size such as 512M or 2G)\n",
      '-m error: %r' % r.stderr)
r = run(['-kernel', '/nonexistent/vmlinuz', '-serial', 'null'])
check(r.returncode == 1 and r.stderr == "kiln: could not load kernel '/nonexistent/vmlinuz': No such file or directory\n",
      'missing kernel: %r' % r.stderr)
big = os.path.join(TMP, 'big.initrd')
with open(big, 'wb') as f:
    f.truncate(64 << 20)
r = run(['-m', '32', '-kernel', kernel(HALT), '-initrd', big, '-serial', 'null'])
check(r.returncode == 1 and re.match(r"kiln: initrd '.*' is too large for guest RAM \(64 MiB; \d+ MiB available\)\n$",
                                     r.stderr), 'big initrd: %r' % r.stderr)

# SIGTERM ends a running VM cleanly; -pidfile is written and removed.
pidfile = os.path.join(TMP, 'kiln.pid')
serial = os.path.join(TMP, 'serial.txt')
p = subprocess.Popen([KILN, '-m', '32', '-kernel', kernel(out_code(b'up\n') + HALT), '-display', 'none',
                      '-serial', 'file:' + serial, '-pidfile', pidfile], stderr=subprocess.PIPE, text=True)
check(wait_for(lambda: os.path.exists(serial) and open(serial).read() == 'up\n'), 'serial file output')
check(open(pidfile).read() == '%d\n' % p.pid, 'pidfile content')
p.send_signal(signal.SIGTERM)
err = p.communicate(timeout=30)[1]
check(p.returncode == 0, 'SIGTERM exit status %r' % p.returncode)
check(err.startswith('kiln: terminating on signal 15 from pid'), 'SIGTERM message %r' % err)
check(not os.path.exists(pidfile), 'pidfile removed')

# -S: the CPU does not start.
serial2 = os.path.join(TMP, 'serial2.txt')
p = subprocess.Popen([KILN, '-S', '-m', '32', '-kernel', kernel(out_code(b'ran\n') + HALT), '-display', 'none',
                      '-serial', 'file:' + serial2], stderr=subprocess.DEVNULL)
time.sleep(1.0)
p.send_signal(signal.SIGINT)
p.wait(timeout=30)
check(p.returncode == 0 and open(serial2).read() == '', '-S kept the CPU stopped')

# -daemonize: the parent returns 0 once the VM is up; the daemon writes the pidfile.
pidfile2 = os.path.join(TMP, 'daemon.pid')
r = run(['-daemonize', '-pidfile', pidfile2, '-m', '32', '-kernel', kernel(HALT), '-display', 'none',
         '-serial', 'null'])
check(r.returncode == 0, '-daemonize parent status %r %r' % (r.returncode, r.stderr))
if os.path.exists(pidfile2):
    daemon = int(open(pidfile2).read())
    os.kill(daemon, signal.SIGTERM)
    check(wait_for(lambda: not os.path.exists(pidfile2)), 'daemon removed its pidfile on SIGTERM')
else:
    check(False, '-daemonize wrote no pidfile')
r = run(['-daemonize', '-m', '32', '-kernel', '/nonexistent', '-display', 'none', '-serial', 'null'])
check(r.returncode == 1 and 'could not load kernel' in r.stderr, '-daemonize start-up failure: %r' % r.stderr)

# -serial pty: the announced pty carries the guest's output.
p = subprocess.Popen([KILN, '-m', '32', '-kernel', kernel(out_code(b'pty ok\n') + HALT), '-display', 'none',
                      '-serial', 'pty'], stderr=subprocess.PIPE, text=True)
line = p.stderr.readline()
m = re.match(r'char device redirected to (/dev/pts/\d+) \(label serial0\)', line)
check(m is not None, 'pty announcement %r' % line)
if m:
    fd = os.open(m.group(1), os.O_RDONLY | os.O_NOCTTY)
    got = b''
    end = time.time() + 30
    while b'pty ok' not in got and time.time() < end:
        got += os.read(fd, 100)
    os.close(fd)
    check(b'pty ok' in got, 'pty output %r' % got)
p.send_signal(signal.SIGTERM)
p.wait(timeout=30)

T.finish()
