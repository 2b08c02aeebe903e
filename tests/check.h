/* Minimal unit-test helpers shared by the tests in tests/unit/.
 *
 * Each test is a function registered with TEST(); main() comes from
 * CHECK_MAIN().  A test reports failure with CHECK()/CHECK_EQ(); the runner
 * prints one line per test, "PASS <file>:<name>" or "FAIL <file>:<name>: why",
 * which tests/run counts.  The exit status is non-zero if any test failed. */
#ifndef EMBER_TESTS_CHECK_H
#define EMBER_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

struct check_test {
	const char *name;
	void (*fn)(void);
};

extern int check_failed;          /* set by CHECK in the running test */
extern char check_why[512];

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond) && !check_failed) {                              \
			check_failed = 1;                                    \
			snprintf(check_why, sizeof(check_why),               \
				 "%s:%d: %s", __FILE__, __LINE__, #cond);    \
		}                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
		if (check_a_ != check_b_ && !check_failed) {                 \
			check_failed = 1;                                    \
			snprintf(check_why, sizeof(check_why),               \
				 "%s:%d: %s == %lld, expected %s == %lld",   \
				 __FILE__, __LINE__, #a, check_a_, #b,       \
				 check_b_);                                  \
		}                                                            \
	} while (0)

/* Substring check, for error messages. */
#define CHECK_STR_HAS(hay, needle)                                           \
	do {                                                                 \
		const char *check_h_ = (hay);                                \
		if ((!check_h_ || !strstr(check_h_, (needle))) && !check_failed) { \
			check_failed = 1;                                    \
			snprintf(check_why, sizeof(check_why),               \
				 "%s:%d: \"%.300s\" does not contain \"%.100s\"",    \
				 __FILE__, __LINE__, check_h_ ? check_h_ : "(null)", \
				 (needle));                                  \
		}                                                            \
	} while (0)

#define TEST(fn) static void fn(void)

#define CHECK_MAIN(...)                                                      \
	int check_failed;                                                    \
	char check_why[512];                                                 \
	int main(void)                                                       \
	{                                                                    \
		static const struct check_test tests_[] = { __VA_ARGS__ };  \
		int bad = 0;                                                 \
		for (size_t i = 0; i < sizeof(tests_) / sizeof(tests_[0]); i++) { \
			check_failed = 0;                                    \
			check_why[0] = 0;                                    \
			tests_[i].fn();                                      \
			if (check_failed) {                                  \
				bad++;                                       \
				printf("FAIL %s:%s: %s\n", CHECK_FILE,       \
				       tests_[i].name, check_why);           \
			} else {                                             \
				printf("PASS %s:%s\n", CHECK_FILE,           \
				       tests_[i].name);                      \
			}                                                    \
			fflush(stdout);                                      \
		}                                                            \
		return bad ? 1 : 0;                                          \
	}

#define T(fn) { #fn, fn }

#endif
