/*
 * A C++ program of another project that uses an installed libpenlink: the
 * header's initialisers of sized structs compile warning-free in C++11 to
 * C++20 (-Wall -Wextra -Werror -pedantic), set the size, and leave every
 * other member zero.
 */
#include <cstdio>
#include <cstring>

#include <penlink/penlink.h>

namespace
{

int failures = 0;

/* every byte after the size member is 0 */
template <typename T> void check(const T &v, const char *name)
{
    if (v.size != sizeof(T)) {
        std::fprintf(stderr, "consumer-cpp: %s does not set the size\n", name);
        failures++;
    }
    const unsigned char *p = reinterpret_cast<const unsigned char *>(&v);
    for (std::size_t i = sizeof v.size; i < sizeof(T); i++)
        if (p[i] != 0) {
            std::fprintf(stderr, "consumer-cpp: %s leaves byte %zu set\n", name, i);
            failures++;
            return;
        }
}

} // namespace

#define CHECK(type, init)                                                                          \
    do {                                                                                           \
        type v = init;                                                                             \
        check(v, #init);                                                                           \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 2 || std::strcmp(penlink_version(), argv[1]) != 0) {
        std::fprintf(stderr, "consumer-cpp: libpenlink is version %s\n", penlink_version());
        return 1;
    }
    CHECK(penlink_decoder_stats, PENLINK_DECODER_STATS_INIT);
    CHECK(penlink_file_header, PENLINK_FILE_HEADER_INIT);
    CHECK(penlink_info, PENLINK_INFO_INIT);
    CHECK(penlink_config, PENLINK_CONFIG_INIT);
    CHECK(penlink_pull_cb, PENLINK_PULL_CB_INIT);
    CHECK(penlink_pull_result, PENLINK_PULL_RESULT_INIT);
    CHECK(penlink_archive_pull_result, PENLINK_ARCHIVE_PULL_RESULT_INIT);
    CHECK(penlink_archive_filter, PENLINK_ARCHIVE_FILTER_INIT);
    CHECK(penlink_audit_cb, PENLINK_AUDIT_CB_INIT);
    CHECK(penlink_limits, PENLINK_LIMITS_INIT);
    CHECK(penlink_key, PENLINK_KEY_INIT);
    CHECK(penlink_key_replacement, PENLINK_KEY_REPLACEMENT_INIT);
    CHECK(penlink_verification, PENLINK_VERIFICATION_INIT);
    CHECK(penlink_audit_summary, PENLINK_AUDIT_SUMMARY_INIT);
    /* and a library call taking one */
    penlink_config cfg = PENLINK_CONFIG_INIT;
    if (penlink_config_set_u32(&cfg, PENLINK_CFG_DEPTH_MAX_UM, 2000) != PENLINK_OK ||
        penlink_config_get_u32(&cfg, PENLINK_CFG_DEPTH_MAX_UM) != 2000) {
        std::fprintf(stderr, "consumer-cpp: penlink_config_set_u32 on an initialised config\n");
        failures++;
    }
    return failures ? 1 : 0;
}
