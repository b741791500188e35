/* hardheap: run-time options (options.c). The table is read once from the
 * environment at process start; hot values are read with a plain load. */
#ifndef HH_OPTIONS_H
#define HH_OPTIONS_H

#include "hardheap.h"

/* Read every option from the environment (the only place it is read).
 * Silent: what was refused is said by hhi_options_warn, which process init
 * calls once the error file is open, so that the warnings reach it too. */
void hhi_options_init(void);
/* Print the warnings of the last hhi_options_init: refused values, unknown
 * HARDHEAP_ names, options this build ignores. */
void hhi_options_warn(void);
/* With VERBOSE: one line per option, its value and where it came from. */
void hhi_options_print(void);
long hhi_option_value(hh_option_t option);
bool hhi_option_enabled(hh_option_t option);
/* HARDHEAP_ERROR_FILE as given (a pattern: %p = the PID), or NULL. */
const char* hhi_option_error_file(void);

#endif /* HH_OPTIONS_H */
