/*-------------------------------------------------------------------------
 *
 * test_shm_mq_ext.h
 *		What crosses the boundary between the leader and its workers: the
 *		segment's magic number, its table-of-contents keys, the shared header,
 *		the arguments a worker is started with, and the settings both read.
 *
 * A ring of N workers lives in one dynamic shared memory segment laid out by
 * shm_toc.  Data queue i carries messages from ring position i to position
 * i + 1, where position 0 is the leader and position N + 1 is the leader
 * again, so there are N + 1 data queues.  Each worker also has an error queue
 * through which pqmq forwards its errors to the leader.
 *
 * IDENTIFICATION
 *		src/test_shm_mq_ext.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TEST_SHM_MQ_EXT_H
#define TEST_SHM_MQ_EXT_H

#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "wait.h"

/*
 * Identifies our segments, and their layout: a worker refuses any other
 * table of contents, a worker of another version of the library included.
 */
#define TEST_SHM_MQ_MAGIC			UINT64CONST(0x74736d7165787433)

/*
 * Table-of-contents keys.  With N workers the keys run without gaps from 0
 * to 2N + 3: the header, the N + 1 data queues, the N error queues, the
 * ring's dynamic shared memory area (area.c), then the processes' wait
 * slots (wait.h), TEST_SHM_MQ_KEYS(N) in all.  Workers are numbered from 1.
 */
#define TEST_SHM_MQ_KEY_HEADER		UINT64CONST(0)
#define TEST_SHM_MQ_KEY_DATA_QUEUE(queue) \
	((uint64) 1 + (uint64) (queue))
#define TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, worker) \
	((uint64) (nworkers) + 1 + (uint64) (worker))
#define TEST_SHM_MQ_KEY_AREA(nworkers) \
	(2 * (uint64) (nworkers) + 2)
#define TEST_SHM_MQ_KEY_WAIT_SLOTS(nworkers) \
	(2 * (uint64) (nworkers) + 3)
#define TEST_SHM_MQ_KEYS(nworkers) \
	(TEST_SHM_MQ_KEY_WAIT_SLOTS(nworkers) + 1)

/*
 * Size of each worker's error queue.  An error report is a few hundred bytes;
 * a longer one still gets through, the leader draining it as it arrives.
 */
#define TEST_SHM_MQ_ERROR_QUEUE_SIZE	16384

/* The extension's name, as CREATE and DROP EXTENSION spell it. */
#define TEST_SHM_MQ_EXTENSION_NAME	"test_shm_mq_ext"

/* The library and entry point the postmaster starts a worker from. */
#define TEST_SHM_MQ_LIBRARY_NAME	"test_shm_mq_ext"
#define TEST_SHM_MQ_WORKER_FUNCTION "test_shm_mq_ext_worker_main"
#define TEST_SHM_MQ_WORKER_TYPE		"test_shm_mq_ext"

/*
 * Where a ring is in its life, in test_shm_mq_header.state.  The diagram,
 * and every transition, is in ring_state.c.
 */
#define TEST_SHM_MQ_RING_OPEN		0	/* being set up, or carrying a call */
#define TEST_SHM_MQ_RING_KEPT		1	/* idle between calls (keep.h) */
#define TEST_SHM_MQ_RING_CLOSED		2	/* taken down: workers leave */
#define TEST_SHM_MQ_RING_LOST		3	/* a worker left while kept: workers
										 * leave, the segment stays pinned */

/*
 * How a worker is named wherever a user or a reader sees it: its number,
 * from 1, and the ring's size.  Its background worker name adds the leader's
 * PID, and the leader's context line the worker's.
 */
#define TEST_SHM_MQ_WORKER_TITLE	"test_shm_mq_ext worker %d of %d"

/* A worker's process, as the ring knows it once the worker has joined. */
typedef struct test_shm_mq_worker_process
{
	pid_t		pid;			/* [W] 0 until the worker has joined */
	PGPROC	   *proc;			/* [W] its latch, for the leader to wake it;
								 * NULL until the worker has joined */
} test_shm_mq_worker_process;

/*
 * The header at TEST_SHM_MQ_KEY_HEADER.
 *
 * Who writes each field: [L] the leader, [W] a worker, [L/W] either.  The
 * leader fills in every field before registering the first worker.  After
 * that, the fields below mutex change only holding it, and only through
 * ring_state.c; wait changes only as its own comment says (wait.h).  state is
 * atomic so that a worker can look at it without the lock after each wait;
 * what it decides on, it reads again under the lock.
 */
typedef struct test_shm_mq_header
{
	/* [L] Read-only once workers start. */
	int			workers_total;	/* N, the number of workers in the ring */
	pid_t		leader_pid;		/* with ring_number, tells a leader that
								 * attaches again by handle that the segment
								 * is still its ring's */
	PGPROC	   *leader;			/* whose latch a worker sets when ready */
	uint64		ring_number;	/* counts the leader's rings */
	test_shm_mq_wait_shared wait;	/* the wait strategy's: how workers wait */
	pg_atomic_uint64 call_number;	/* [L] the calls the ring has carried,
									 * the current one included: set before
									 * its first message */

	/* Written holding mutex, by ring_state.c. */
	slock_t		mutex;
	pg_atomic_uint32 state;		/* [L/W] TEST_SHM_MQ_RING_*: the leader
								 * closes, keeps and claims; a worker closes
								 * a kept ring, or marks it lost */
	int			ready_workers;	/* [W] how many workers attached all their
								 * queues; each counts itself */
	int			lost_worker;	/* [W] set, [L] cleared: the worker that
								 * left a kept ring; while the ring is
								 * TEST_SHM_MQ_RING_LOST the segment is
								 * pinned */
	test_shm_mq_worker_process workers[FLEXIBLE_ARRAY_MEMBER];	/* [W] by
																 * worker
																 * number - 1 */
} test_shm_mq_header;

/*
 * What a worker learns from bgw_extra; bgw_main_arg carries the segment
 * handle.  Workers connect, to no database, as the role that made the call
 * where that role may connect (setup.c), so that pg_stat_activity shows
 * whose they are.
 */
typedef struct test_shm_mq_worker_args
{
	int			worker_number;	/* 1 to N: the worker's place in the ring */
	Oid			user_id;
	int			connect_delay_ms;	/* test_shm_mq_ext.worker_connect_delay,
									 * as the leader had it */
	pid_t		leader_pid;		/* with ring_number, as in the header: a */
	uint64		ring_number;	/* worker whose segment handle names another
								 * ring by now must not join that one */
} test_shm_mq_worker_args;

StaticAssertDecl(sizeof(test_shm_mq_worker_args) <= BGW_EXTRALEN,
				 "worker arguments must fit in bgw_extra");

/* Settings (module.c). */
extern int test_shm_mq_ring_keepalive;
extern int test_shm_mq_worker_slot_wait;
extern int test_shm_mq_default_wait_strategy;
extern int test_shm_mq_spin_budget_us;
extern int test_shm_mq_max_kept_workers;
extern int test_shm_mq_zero_copy_min_bytes;
extern int test_shm_mq_worker_connect_delay;
extern void test_shm_mq_define_settings(void);

/* The ring's state: every transition, for leader and workers (ring_state.c). */
extern bool test_shm_mq_state_join(test_shm_mq_header *header,
								   int worker_number);
extern void test_shm_mq_state_count_ready(test_shm_mq_header *header);
extern int	test_shm_mq_state_ready_workers(test_shm_mq_header *header);
extern void test_shm_mq_state_close(test_shm_mq_header *header);
extern void test_shm_mq_state_keep(test_shm_mq_header *header);
extern uint32 test_shm_mq_state_claim(test_shm_mq_header *header);
extern uint32 test_shm_mq_state_expire(test_shm_mq_header *header,
									   bool expired);
extern bool test_shm_mq_state_stand_down(test_shm_mq_header *header);
extern bool test_shm_mq_state_about_to_lose(test_shm_mq_header *header,
											int worker_number, bool expired);
extern bool test_shm_mq_state_lose(test_shm_mq_header *header);
extern int	test_shm_mq_state_lost_worker(test_shm_mq_header *header);
extern uint32 test_shm_mq_state_end_kept(test_shm_mq_header *header);
extern uint32 test_shm_mq_state_peek(test_shm_mq_header *header);
extern bool test_shm_mq_state_closed(test_shm_mq_header *header);
extern test_shm_mq_worker_process test_shm_mq_state_worker(test_shm_mq_header *header,
														   int worker_number);
extern void test_shm_mq_state_wake_workers(test_shm_mq_header *header);

/* The worker's entry point, and its connecting (worker.c). */
pg_noreturn extern PGDLLEXPORT void test_shm_mq_ext_worker_main(Datum main_arg);
extern PGDLLIMPORT volatile sig_atomic_t test_shm_mq_connect_due;
extern void test_shm_mq_worker_connect(void);

#endif							/* TEST_SHM_MQ_EXT_H */
