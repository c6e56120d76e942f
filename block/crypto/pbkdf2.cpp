#include "block/crypto/pbkdf2.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <climits>
#include <vector>

#include <openssl/evp.h>

namespace kiln::block::crypto {

Result<void> pbkdf2(HashAlg hash, std::span<const uint8_t> password, std::span<const uint8_t> salt, uint64_t iterations,
    std::span<uint8_t> out)
{
    const EVP_MD* md = hash_evp(hash);
    if (!md)
        return Error::not_supported(std::string("Hash algorithm '") + hash_alg_name(hash) + "' is not supported");
    if (iterations == 0 || iterations > k_max_pbkdf2_iterations || iterations > uint64_t(INT_MAX))
        return Error::invalid("PBKDF2 iteration count " + std::to_string(iterations) + " is out of range (1 to "
            + std::to_string(k_max_pbkdf2_iterations) + ")");
    // OpenSSL wants a non-null pointer even for an empty password.
    static const uint8_t k_empty = 0;
    const char* pass
        = password.empty() ? reinterpret_cast<const char*>(&k_empty) : reinterpret_cast<const char*>(password.data());
    if (PKCS5_PBKDF2_HMAC(
            pass, int(password.size()), salt.data(), int(salt.size()), int(iterations), md, int(out.size()), out.data())
        != 1)
        return Error::internal("PBKDF2 failed");
    return ok();
}

static uint64_t thread_cpu_ns()
{
    timespec ts {};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

Result<uint64_t> pbkdf2_iterations_for(HashAlg hash, size_t out_bytes, uint64_t iter_time_ms, uint64_t minimum)
{
    constexpr uint64_t k_measure_ns = 40'000'000;
    std::array<uint8_t, 32> password {};
    std::array<uint8_t, 32> salt {};
    std::vector<uint8_t> out(out_bytes);
    uint64_t iterations = 1 << 10;
    uint64_t elapsed_ns = 0;
    for (;;) {
        uint64_t start = thread_cpu_ns();
        TRY(pbkdf2(hash, password, salt, iterations, out));
        elapsed_ns = thread_cpu_ns() - start;
        if (elapsed_ns >= k_measure_ns || iterations >= k_max_pbkdf2_iterations / 2)
            break;
        iterations *= 2;
    }
    long double per_ms = (long double)iterations * 1e6L / (long double)std::max<uint64_t>(elapsed_ns, 1);
    long double wanted = per_ms * (long double)iter_time_ms;
    uint64_t result = wanted >= (long double)k_max_pbkdf2_iterations ? k_max_pbkdf2_iterations : uint64_t(wanted);
    return std::max(result, minimum);
}

} // namespace kiln::block::crypto
