#include "tools/common/env.h"

#include <cstdio>

#include "tools/common/cli.h"

namespace kiln::tools {

Result<std::unique_ptr<ToolEnv>> ToolEnv::create()
{
    auto env = std::unique_ptr<ToolEnv>(new ToolEnv);
    env->m_loop = TRY(EventLoop::create());
    env->m_pool = std::make_unique<ThreadPool>(*env->m_loop);
    env->m_ctx = std::make_unique<block::BlockContext>(*env->m_loop, *env->m_pool);
    return env;
}

Result<block::ImageSpec> image_spec_from_options(const std::string& text, const block::OpenFlags& flags)
{
    OptionList opts = TRY(OptionList::parse(text));
    block::ImageSpec spec;
    spec.flags = flags;
    std::string driver = opts.get("driver").value_or("");
    std::optional<std::string> filename;
    if (driver == "file") {
        // A bare protocol node: read it as raw bytes.
        filename = opts.get("filename");
        opts.remove("filename");
        driver = "raw";
    } else {
        filename = opts.get("file.filename");
        if (!filename)
            filename = opts.get("file");
        opts.remove("file.filename");
        opts.remove("file");
        if (opts.get("file.driver").value_or("file") != "file")
            return Error::not_supported("Unknown protocol '" + *opts.get("file.driver") + "'");
        opts.remove("file.driver");
    }
    opts.remove("driver");
    if (!filename)
        return Error::not_found("Cannot find device='" + text + "' nor node-name='" + text + "'");
    spec.filename = *filename;
    spec.format = driver;
    spec.options = opts;
    return spec;
}

static void print_raw_probe_warning(const std::string& filename)
{
    std::fprintf(stderr, "%s\n", block::probed_raw_warning(filename).c_str());
}

Task<Result<OpenedImage>> open_tool_image(block::BlockContext& ctx, ImageRequest request)
{
    block::ImageSpec spec;
    std::string display = request.filename;
    if (request.image_opts) {
        auto parsed = image_spec_from_options(request.filename, request.flags);
        if (!parsed)
            co_return parsed.error().with_context("Could not open '" + request.filename + "'");
        spec = std::move(parsed).value();
        display = spec.filename;
        if (spec.format.empty())
            spec.format = request.format;
    } else {
        spec.filename = request.filename;
        spec.format = request.format;
        spec.flags = request.flags;
    }
    if (!spec.format.empty() && !ctx.find_format(spec.format))
        co_return Error::invalid("Unknown file format '" + spec.format + "'");
    for (auto& [key, value] : request.options.entries())
        if (!spec.options.has(key))
            spec.options.set(key, value);
    // An empty format lets open_image probe, so a guessed raw image gets
    // the raw driver's protection of block 0, as in QEMU.
    (void)ctx.take_probed_raw();
    auto node = co_await ctx.open_image(spec);
    std::vector<std::string> probed_raw = ctx.take_probed_raw();
    if (!node) {
        if (!request.wrap_errors)
            co_return node.error();
        // qemu-img names an --image-opts image by the whole option string.
        co_return node.error().with_context("Could not open '" + request.filename + "'");
    }
    OpenedImage image;
    image.node = std::move(node).value();
    image.filename = display;
    image.format = spec.format.empty() ? std::string(image.node->driver_name()) : spec.format;
    // Backing files are read-only; only the image itself warns (QEMU's raw
    // driver warns when a probed image is writable).
    bool top_probed = image.format == "raw" && !probed_raw.empty() && probed_raw.front() == spec.filename;
    if (top_probed && spec.flags.read_write && request.warn_raw_probe)
        print_raw_probe_warning(spec.filename);
    co_return image;
}

Task<Result<void>> close_image(OpenedImage& image)
{
    if (!image.node)
        co_return ok();
    auto r = co_await image.node->close();
    image.node.reset();
    co_return r;
}

} // namespace kiln::tools
