/* Calendar arithmetic (calendar.h): Howard Hinnant's days_from_civil. */
#include "calendar.h"

/* A 400-year era of the Gregorian calendar, and 1970-03-01's day in era 4 */
#define DAYS_PER_ERA 146097
#define YEARS_PER_ERA 400
#define EPOCH_DAY_OF_ERA0 719468

int64_t pc_floor_div(int64_t x, int64_t d)
{
    return x / d - (x % d < 0);
}

int64_t pc_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2; /* years start in March: the leap day is the last */
    int64_t era = pc_floor_div(y, YEARS_PER_ERA);
    int64_t yoe = y - era * YEARS_PER_ERA;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * DAYS_PER_ERA + doe - EPOCH_DAY_OF_ERA0;
}
