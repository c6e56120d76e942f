#include "block/types.h"

namespace kiln::block {

const char* prealloc_name(PreallocMode mode)
{
    switch (mode) {
    case PreallocMode::Off:
        return "off";
    case PreallocMode::Metadata:
        return "metadata";
    case PreallocMode::Falloc:
        return "falloc";
    case PreallocMode::Full:
        return "full";
    }
    return "off";
}

std::optional<PreallocMode> parse_prealloc(const std::string& name)
{
    if (name == "off")
        return PreallocMode::Off;
    if (name == "metadata")
        return PreallocMode::Metadata;
    if (name == "falloc")
        return PreallocMode::Falloc;
    if (name == "full")
        return PreallocMode::Full;
    return std::nullopt;
}

std::optional<CacheMode> parse_cache_mode(const std::string& name)
{
    // QEMU's bdrv_parse_cache_mode also accepts "off" for none.
    if (name == "writeback")
        return CacheMode::Writeback;
    if (name == "none" || name == "off")
        return CacheMode::None;
    if (name == "writethrough")
        return CacheMode::Writethrough;
    if (name == "directsync")
        return CacheMode::Directsync;
    if (name == "unsafe")
        return CacheMode::Unsafe;
    return std::nullopt;
}

std::optional<AioEngine> parse_aio_engine(const std::string& name)
{
    if (name == "threads")
        return AioEngine::Threads;
    if (name == "native")
        return AioEngine::Native;
    if (name == "io_uring")
        return AioEngine::IoUring;
    return std::nullopt;
}

const char* aio_engine_name(AioEngine engine)
{
    switch (engine) {
    case AioEngine::Threads:
        return "threads";
    case AioEngine::Native:
        return "native";
    case AioEngine::IoUring:
        return "io_uring";
    }
    return "threads";
}

} // namespace kiln::block
