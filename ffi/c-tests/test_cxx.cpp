// The header compiled as C++ (g++ -std=c++11 -pedantic -Werror): it must be
// usable from C++ as is, and its compile-time version must be the library's.
#include "kvmsandbox.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static void fail(const char *what) {
    std::fprintf(stderr, "test_cxx: FAILED: %s (last error: %s)\n", what, kvmsb_last_error());
    std::exit(1);
}

static void on_output(void *user_data, kvmsb_stream stream, const uint8_t *data, size_t len) {
    static_cast<std::string *>(user_data)->append(reinterpret_cast<const char *>(data), len);
    (void)stream;
}

int main() {
    std::string compiled = std::to_string(KVMSB_VERSION_MAJOR) + "." + std::to_string(KVMSB_VERSION_MINOR) + "." +
                           std::to_string(KVMSB_VERSION_PATCH);
    if (compiled != KVMSB_VERSION_STRING) fail("the version macros disagree with KVMSB_VERSION_STRING");
    if (compiled != kvmsb_version()) fail("the header's version is not the library's");

    kvmsb_exec_options *eo = nullptr;
    if (kvmsb_exec_options_new(&eo) != KVMSB_STATUS_OK) fail("kvmsb_exec_options_new");
    std::string sink;
    if (kvmsb_exec_options_set_output(eo, on_output, &sink) != KVMSB_STATUS_OK) fail("set_output");
    if (kvmsb_exec_options_set_timeout(eo, KVMSB_TIMEOUT_DEFAULT) != KVMSB_STATUS_OK) fail("set_timeout default");
    if (kvmsb_exec_options_set_timeout(eo, 0) != KVMSB_STATUS_INVALID_ARGUMENT) fail("set_timeout 0");
    kvmsb_exec_options_free(eo);

    kvmsb_wasm_options *wo = nullptr;
    if (kvmsb_wasm_options_new(&wo) != KVMSB_STATUS_OK) fail("kvmsb_wasm_options_new");
    if (kvmsb_wasm_options_set_timeout(wo, KVMSB_TIMEOUT_NONE) != KVMSB_STATUS_OK) fail("set_timeout none");
    kvmsb_wasm_options_free(wo);

    kvmsb_config *cfg = kvmsb_config_new();
    if (kvmsb_config_set_seccomp(cfg, KVMSB_SECCOMP_TRAP) != KVMSB_STATUS_OK) fail("set_seccomp");
    kvmsb_config_free(cfg);
    if (std::strcmp(kvmsb_status_name(KVMSB_STATUS_TIMEOUT), "KVMSB_STATUS_TIMEOUT") != 0) fail("status name");
    std::printf("ok - the header compiles as C++; version %s\n", KVMSB_VERSION_STRING);
    return 0;
}
