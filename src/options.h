/* hardheap: run-time options (options.c). The table is read once from the
 * environment at process start; hot values are read with a plain load. */
#ifndef HH_OPTIONS_H
#define HH_OPTIONS_H

#include "hardheap.h"

void hhi_options_init(void);
long hhi_option_value(hh_option_t option);
bool hhi_option_enabled(hh_option_t option);

#endif /* HH_OPTIONS_H */
