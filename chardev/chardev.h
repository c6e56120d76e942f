// Chardev: a host-side byte stream a guest device talks to (stdio, a
// file, a unix socket, a pty, or nothing). Output may be written from any
// thread (the vCPU thread writes serial output with the machine lock
// held); input is delivered on the event loop's thread.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "chardev/chardev_spec.h"
#include "util/event_loop.h"
#include "util/result.h"

namespace kiln::chardev {

class Chardev {
public:
    using InputHandler = std::function<void(std::span<const uint8_t>)>;
    virtual ~Chardev() = default;

    // Never blocks for long: bytes nobody can take (no socket client, a
    // full pty) are dropped, as a disconnected serial line drops them.
    virtual void write(std::span<const uint8_t> bytes) = 0;
    // Starts delivering input on `loop`.
    virtual Result<void> attach(EventLoop& loop, InputHandler on_input) = 0;
    // Stops input delivery (before the loop goes away).
    virtual void detach() {}
};

// Opens the backend `spec` describes. label names it in messages
// ("serial0"). None gives nullptr; callers treat it as "no device".
Result<std::unique_ptr<Chardev>> open_chardev(const ChardevSpec& spec, const std::string& label);

// A pty in raw mode, non-blocking master side; prints QEMU's "char device
// redirected to /dev/pts/N (label LABEL)" on stderr. The caller owns the fd.
Result<int> open_pty_master(const std::string& label);

} // namespace kiln::chardev
