// Raw mode for the controlling terminal while stdio is a serial console.
// The original settings come back on every exit path: the guard's
// destructor, exit() (atexit), and fatal signals handled by system/.
// Terminal state is process-wide by nature, so this is global.
#pragma once

namespace kiln::chardev {

// Puts fd 0 in raw mode (no echo, no line editing; ISIG kept so Ctrl-C
// still ends kiln, as QEMU's stdio signal=on). No-op if not a tty.
void terminal_enter_raw();
// Restores the saved settings; safe to call repeatedly and from a signal
// handler (tcsetattr is async-signal-safe).
void terminal_restore();

} // namespace kiln::chardev
