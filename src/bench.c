/*-------------------------------------------------------------------------
 *
 * bench.c
 *		test_shm_mq_bench(): time one ring, its setup and its messages, under
 *		a chosen wait strategy, and report the figures as one row.
 *
 * Modes:
 *	pingpong	one message in flight: repeat_count trips round the ring
 *	pipelined	repeat_count copies in flight at once, not verified, so that
 *				the figure is the transport's
 *	idle		one trip, then the ring sits idle for repeat_count
 *				milliseconds, then one more trip: for watching what idle
 *				workers cost
 *
 * Setup counts creating the segment, starting the workers and waiting for
 * them, and taking it all down again, or, with a kept ring, claiming it and
 * keeping it again; the run counts the messages alone.
 * Times come from instr_time, the leader's CPU time from getrusage().
 *
 * IDENTIFICATION
 *		src/bench.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/resource.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "ring.h"

PG_FUNCTION_INFO_V1(test_shm_mq_bench);

#define BENCH_COLUMNS	8

typedef enum bench_mode
{
	BENCH_PINGPONG,
	BENCH_PIPELINED,
	BENCH_IDLE
} bench_mode;

static bench_mode parse_mode(const char *name);
static double cpu_ms(void);

/*
 * test_shm_mq_bench(queue_size int8, message_size int4, repeat_count int4,
 *					 num_workers int4, mode text, wait_strategy text)
 *		returns (setup_ms, run_ms, messages, bytes, msgs_per_sec,
 *				 mb_per_sec, us_per_round_trip, leader_cpu_ms)
 *
 * A null wait_strategy means test_shm_mq_ext.wait_strategy.  The other
 * arguments must not be null.
 */
Datum
test_shm_mq_bench(PG_FUNCTION_ARGS)
{
	int64		queue_size;
	int32		message_size;
	int32		repeat_count;
	int32		nworkers;
	bench_mode	mode;
	test_shm_mq_wait_strategy strategy = test_shm_mq_default_wait_strategy;
	char	   *message;
	int64		messages;
	test_shm_mq_ring *ring;
	instr_time	start;
	instr_time	ready;
	instr_time	done;
	instr_time	end;
	double		cpu_start;
	double		leader_cpu_ms;
	double		setup_ms;
	double		run_ms;
	TupleDesc	tupdesc;
	Datum		values[BENCH_COLUMNS];
	bool		nulls[BENCH_COLUMNS];
	int			arg;
	int32		i;

	for (arg = 0; arg < 5; arg++)
	{
		if (PG_ARGISNULL(arg))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("only the wait strategy may be null")));
	}
	queue_size = PG_GETARG_INT64(0);
	message_size = PG_GETARG_INT32(1);
	repeat_count = PG_GETARG_INT32(2);
	nworkers = PG_GETARG_INT32(3);
	mode = parse_mode(text_to_cstring(PG_GETARG_TEXT_PP(4)));
	if (!PG_ARGISNULL(5))
		strategy = test_shm_mq_parse_wait_strategy(text_to_cstring(PG_GETARG_TEXT_PP(5)));

	if (message_size < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message size must not be negative")));
	if ((Size) message_size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message size %d exceeds the maximum of %zu bytes",
						message_size, (Size) MaxAllocSize)));
	test_shm_mq_check_repeat_count(repeat_count);
	test_shm_mq_check_worker_count(nworkers, mode == BENCH_PIPELINED ? 0 : 1);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	message = palloc(message_size);
	for (i = 0; i < message_size; i++)
		message[i] = 'a' + i % 26;

	INSTR_TIME_SET_CURRENT(start);
	ring = test_shm_mq_ring_acquire(queue_size, nworkers, strategy);
	INSTR_TIME_SET_CURRENT(ready);
	cpu_start = cpu_ms();

	switch (mode)
	{
		case BENCH_PINGPONG:
			test_shm_mq_ping_pong(ring, message_size, message, repeat_count);
			messages = repeat_count;
			break;
		case BENCH_PIPELINED:
			test_shm_mq_pipeline(ring, message_size, message, repeat_count,
								 false);
			messages = repeat_count;
			break;
		case BENCH_IDLE:
			test_shm_mq_ping_pong(ring, message_size, message, 1);
			test_shm_mq_idle(ring, repeat_count);
			test_shm_mq_ping_pong(ring, message_size, message, 1);
			messages = 2;
			break;
	}

	leader_cpu_ms = cpu_ms() - cpu_start;
	INSTR_TIME_SET_CURRENT(done);
	test_shm_mq_ring_done(ring, fcinfo->flinfo->fn_oid);
	INSTR_TIME_SET_CURRENT(end);

	INSTR_TIME_SUBTRACT(end, done);
	INSTR_TIME_SUBTRACT(done, ready);
	INSTR_TIME_SUBTRACT(ready, start);
	setup_ms = INSTR_TIME_GET_MILLISEC(ready) + INSTR_TIME_GET_MILLISEC(end);
	run_ms = INSTR_TIME_GET_MILLISEC(done);

	memset(nulls, 0, sizeof(nulls));
	values[0] = Float8GetDatum(setup_ms);
	values[1] = Float8GetDatum(run_ms);
	values[2] = Int64GetDatum(messages);
	values[3] = Int64GetDatum(messages * message_size);
	if (run_ms > 0 && messages > 0)
	{
		values[4] = Float8GetDatum(messages / (run_ms / 1000.0));
		values[5] = Float8GetDatum(messages * (double) message_size /
								   (run_ms * 1000.0));
		values[6] = Float8GetDatum(run_ms * 1000.0 / messages);
	}
	else
		nulls[4] = nulls[5] = nulls[6] = true;
	values[7] = Float8GetDatum(leader_cpu_ms);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

/*
 * Map a mode name to the mode; reject any other name.
 */
static bench_mode
parse_mode(const char *name)
{
	if (strcmp(name, "pingpong") == 0)
		return BENCH_PINGPONG;
	if (strcmp(name, "pipelined") == 0)
		return BENCH_PIPELINED;
	if (strcmp(name, "idle") == 0)
		return BENCH_IDLE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid benchmark mode \"%s\"", name),
			 errhint("Valid modes are \"pingpong\", \"pipelined\" and \"idle\".")));
	pg_unreachable();
}

/*
 * CPU time this process has used so far, user and system, in milliseconds.
 */
static double
cpu_ms(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000.0 +
		(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000.0;
}
