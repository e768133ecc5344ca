/* test-parse.c - strict number parsers and file reads against good and bad input. */
#include <errno.h>
#include <stdint.h>

#include "parse.h"
#include "tap.h"

int main(void)
{
        uint64_t u = 7;
        int64_t i;
        double d;
        bool b;

        is_int(parse_u64("123\n", &u), 0, "u64 with newline");
        is_int(u, 123, "value 123");
        is_int(parse_u64("  42  ", &u), 0, "u64 with spaces");
        is_int(parse_u64("18446744073709551615", &u), 0, "u64 max");
        ok(u == UINT64_MAX, "u64 max value");
        u = 5;
        is_int(parse_u64("18446744073709551616", &u), -ERANGE, "u64 overflow");
        is_int(parse_u64("", &u), -EINVAL, "empty");
        is_int(parse_u64("\n", &u), -EINVAL, "only newline");
        is_int(parse_u64("-1", &u), -EINVAL, "negative");
        is_int(parse_u64("+1", &u), -EINVAL, "plus sign");
        is_int(parse_u64("12abc", &u), -EINVAL, "trailing garbage");
        is_int(parse_u64("0x10", &u), -EINVAL, "hex");
        is_int(parse_u64("1 2", &u), -EINVAL, "two numbers");
        is_int(u, 5, "failed parse leaves output untouched");
        is_int(parse_u64(NULL, &u), -EINVAL, "NULL");

        is_int(parse_i64("-45000\n", &i), 0, "i64 negative");
        is_int(i, -45000, "value -45000");
        is_int(parse_i64("-", &i), -EINVAL, "lone minus");
        is_int(parse_i64("99999999999999999999", &i), -ERANGE, "i64 overflow");

        is_int(parse_double("1.5", &d), 0, "double");
        is_near(d, 1.5, 1e-12, "value 1.5");
        is_int(parse_double("nan", &d), -EINVAL, "nan rejected");
        is_int(parse_double("inf", &d), -EINVAL, "inf rejected");
        is_int(parse_double("1e999", &d), -ERANGE, "huge double");
        is_int(parse_double("1.5x", &d), -EINVAL, "double garbage");

        is_int(parse_bool("yes", &b), 0, "bool yes");
        ok(b, "yes is true");
        is_int(parse_bool("off\n", &b), 0, "bool off");
        ok(!b, "off is false");
        is_int(parse_bool("maybe", &b), -EINVAL, "bool garbage");

        uint64_t ns;
        is_int(parse_duration_ns("100", 1000000, &ns), 0, "bare duration");
        is_int(ns, 100000000, "100 ms default unit");
        is_int(parse_duration_ns("2s", 1000000, &ns), 0, "2s");
        is_int(ns, 2000000000, "2 s");
        is_int(parse_duration_ns("500us", 1000000, &ns), 0, "500us");
        is_int(ns, 500000, "500 us");
        is_int(parse_duration_ns("1.5min", 1000000, &ns), 0, "1.5min");
        is_int(ns, 90000000000LL, "90 s");
        is_int(parse_duration_ns("5 parsecs", 1000000, &ns), -EINVAL, "unknown unit");
        is_int(parse_duration_ns("-5", 1000000, &ns), -EINVAL, "negative duration");

        uint64_t mask[2] = {0, 0};
        is_int(parse_cpu_list("0-3,5,64\n", mask, 128), 6, "cpu list count");
        ok(mask[0] == 0x2f && mask[1] == 1, "cpu list bits");
        uint64_t m2[1] = {0};
        is_int(parse_cpu_list("3-1", m2, 64), -EINVAL, "reversed range");
        is_int(parse_cpu_list("0-64", m2, 64), -ERANGE, "cpu beyond mask");
        is_int(parse_cpu_list("0,,1", m2, 64), -EINVAL, "empty element");
        is_int(parse_cpu_list("", m2, 64), 0, "empty list");
        return tap_done();
}
