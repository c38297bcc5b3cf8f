/*
 * handles.c: the handle guards of lessor.h ("Handles"), exercised as C would
 * misuse them: double frees, calls on a freed engine, a pointer that is not a
 * handle, and lessor_engine_free while other threads are inside calls. Needs no
 * database. Run by ffi/tests/c_handles.rs, also under valgrind (which would
 * report any read of freed memory).
 *
 * Environment:
 *   LESSOR_DATA_DIR   a fresh directory for the engine
 *   LESSOR_THREADS    threads calling while the engine is freed (default 4)
 *   LESSOR_ROUNDS     open/free rounds under calls (default 20)
 * Prints "OK" and exits 0 when every check held; otherwise prints the failed
 * check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lessor.h"

static const char *OPTIONS = "{\"fsync\": \"never\"}";
static char root[256];
static int failures;

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "handles.c:%d: check failed: %s\n", __LINE__, #cond); \
      failures++;                                                     \
    }                                                                 \
  } while (0)

static lessor_engine *open_engine(const char *dir) {
  lessor_engine *engine = NULL;
  lessor_error *err = NULL;
  lessor_status status = lessor_engine_open(dir, OPTIONS, &engine, &err);
  if (status != LESSOR_OK) {
    fprintf(stderr, "lessor_engine_open: %s: %s\n", lessor_status_str(status),
            err ? lessor_error_message(err) : "");
    exit(1);
  }
  return engine;
}

/* One cheap call that needs no database: read sys/mounts. */
static lessor_status read_mounts(lessor_engine *engine, lessor_error **err) {
  char *response = NULL;
  lessor_status status = lessor_request(engine, root, "read", "sys/mounts", NULL, &response, err);
  CHECK((status == LESSOR_OK) == (response != NULL));
  lessor_string_free(response);
  return status;
}

/* Expects `status` to be LESSOR_INVALID_HANDLE with an error in `*err` naming
 * `engine`; frees that error and sets `*err` to NULL. */
static void expect_invalid_handle(lessor_status status, lessor_error **err) {
  CHECK(status == LESSOR_INVALID_HANDLE);
  CHECK(*err != NULL);
  if (*err != NULL) {
    CHECK(lessor_error_status(*err) == LESSOR_INVALID_HANDLE);
    CHECK(strstr(lessor_error_message(*err), "engine") != NULL);
    lessor_error_free(*err);
    *err = NULL;
  }
}

struct worker {
  lessor_engine *engine;
  pthread_mutex_t *lock;
  pthread_cond_t *cond;
  int *started;
  int unexpected;
  long calls;
};

static void *call_until_freed(void *arg) {
  struct worker *w = arg;
  for (;;) {
    lessor_error *err = NULL;
    lessor_status status = read_mounts(w->engine, &err);
    if (w->calls++ == 0) {
      pthread_mutex_lock(w->lock);
      (*w->started)++;
      pthread_cond_broadcast(w->cond);
      pthread_mutex_unlock(w->lock);
    }
    if (status == LESSOR_OK) continue;
    if (status != LESSOR_INVALID_HANDLE) {
      fprintf(stderr, "a call racing lessor_engine_free returned %s: %s\n", lessor_status_str(status),
              err ? lessor_error_message(err) : "");
      w->unexpected++;
    }
    lessor_error_free(err);
    return NULL;
  }
}

static void free_under_calls(const char *dir, int threads, int rounds) {
  pthread_t ids[64];
  struct worker workers[64];
  pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  int round, i;
  if (threads > 64) threads = 64;
  for (round = 0; round < rounds; round++) {
    int started = 0;
    lessor_engine *engine = open_engine(dir);
    for (i = 0; i < threads; i++) {
      workers[i] = (struct worker){engine, &lock, &cond, &started, 0, 0};
      if (pthread_create(&ids[i], NULL, call_until_freed, &workers[i]) != 0) exit(1);
    }
    /* Every thread has made one call; most are inside the next one. */
    pthread_mutex_lock(&lock);
    while (started < threads) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    lessor_engine_free(engine);
    for (i = 0; i < threads; i++) {
      pthread_join(ids[i], NULL);
      CHECK(workers[i].unexpected == 0);
    }
    /* Freed for good, and the directory was released: it opens again. */
    {
      lessor_error *err = NULL;
      expect_invalid_handle(read_mounts(engine, &err), &err);
    }
  }
}

int main(void) {
  const char *dir = getenv("LESSOR_DATA_DIR");
  int threads = atoi(getenv("LESSOR_THREADS") ? getenv("LESSOR_THREADS") : "4");
  int rounds = atoi(getenv("LESSOR_ROUNDS") ? getenv("LESSOR_ROUNDS") : "20");
  char *token = NULL;
  lessor_error *err = NULL;
  lessor_engine *engine;
  int not_a_handle = 0;

  if (dir == NULL) {
    fprintf(stderr, "set LESSOR_DATA_DIR\n");
    return 2;
  }
  if (lessor_init(dir, OPTIONS, &token, NULL) != LESSOR_OK) return 1;
  snprintf(root, sizeof root, "%s", token);
  lessor_string_free(token);
  lessor_string_free(token); /* double free of a string: a no-op */

  engine = open_engine(dir);

  /* An error: freed twice, then read. */
  {
    lessor_credential *credential = NULL;
    lessor_error *live = NULL;
    CHECK(lessor_issue(engine, "not-a-token", "database/creds/x", &credential, &err) ==
          LESSOR_PERMISSION_DENIED);
    CHECK(credential == NULL);
    /* Another error, live while the first is misused. */
    CHECK(lessor_issue(engine, "not-a-token", "database/creds/y", &credential, &live) ==
          LESSOR_PERMISSION_DENIED);
    /* Pointers that are not of the kind expected are refused, not freed. */
    lessor_string_free((char *)lessor_error_message(live));
    lessor_credential_free((lessor_credential *)live);
    CHECK(lessor_credential_username((const lessor_credential *)live) == NULL);
    CHECK(lessor_credential_ttl_s((const lessor_credential *)live) == -1);
    CHECK(lessor_error_status(live) == LESSOR_PERMISSION_DENIED);
    CHECK(strstr(lessor_error_message(live), "permission denied") != NULL);
    lessor_error_free(err);
    lessor_error_free(err);
    CHECK(lessor_error_status(err) == LESSOR_INVALID_HANDLE);
    CHECK(lessor_error_message(err) != NULL);
    CHECK(strstr(lessor_error_message(err), "invalid lessor_error") != NULL);
    CHECK(lessor_error_status(live) == LESSOR_PERMISSION_DENIED);
    lessor_error_free(live);
    err = NULL;
  }

  /* A pointer that no lessor_engine_open returned. */
  {
    lessor_engine *fake = (lessor_engine *)(void *)&not_a_handle;
    expect_invalid_handle(read_mounts(fake, &err), &err);
    lessor_engine_free(fake);
    CHECK(not_a_handle == 0);
    /* An error is not an engine either. */
    CHECK(read_mounts(engine, &err) == LESSOR_OK);
    CHECK(lessor_issue(engine, "not-a-token", "database/creds/x", NULL, &err) == LESSOR_NULL_PARAMETER);
    CHECK(read_mounts((lessor_engine *)(void *)err, NULL) == LESSOR_INVALID_HANDLE);
    lessor_error_free(err);
    err = NULL;
  }

  /* Use after free and double free of an engine. */
  lessor_engine_free(engine);
  {
    lessor_credential *credential = NULL;
    char *response = NULL;
    int64_t ttl = 7;
    expect_invalid_handle(read_mounts(engine, &err), &err);
    expect_invalid_handle(lessor_issue(engine, root, "database/creds/x", &credential, &err), &err);
    CHECK(credential == NULL);
    expect_invalid_handle(lessor_renew(engine, root, "database/creds/x/y", 60, &ttl, &err), &err);
    CHECK(ttl == 7);
    expect_invalid_handle(lessor_revoke(engine, root, "database/creds/x/y", &err), &err);
    expect_invalid_handle(
        lessor_request(engine, root, "update", "sys/mounts/database", "{\"type\":\"database\"}", &response, &err),
        &err);
    CHECK(response == NULL);
    CHECK(lessor_issue(engine, root, "database/creds/x", &credential, NULL) == LESSOR_INVALID_HANDLE);
  }
  lessor_engine_free(engine); /* double free: a no-op */
  lessor_engine_free(engine);

  free_under_calls(dir, threads, rounds);

  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("OK\n");
  return 0;
}
