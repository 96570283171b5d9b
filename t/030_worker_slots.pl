
# 030_worker_slots.pl
#
# Proves what a call does when all background worker slots are taken, on a
# node with max_worker_processes = 4, of which the logical replication
# launcher holds one, and another session's long call holds the other three:
#
#  - with test_shm_mq_ext.worker_slot_wait = 0 it fails at once with
#    "no free background worker slot for worker K of N" (53000) and a hint
#    naming max_worker_processes and test_shm_mq_ext.worker_slot_wait;
#  - with the wait set and no slot freed, it fails after about the wait, with
#    the DETAIL "No slot became free within N ms.";
#  - with the wait set, it succeeds once the other call ends and frees its
#    slots, promptly after that;
#  - a ring that gets some of its slots but not all fails the same way, and
#    the workers it did start do not outlive the call;
#  - a call waiting for a slot, its first worker started and the registration
#    lock held, ends within a second on pg_cancel_backend(),
#    statement_timeout or pg_terminate_backend(); its worker goes, and the
#    next caller gets the freed slot without waiting for any lock.
#
# After each, no worker process and no segment of ours is left.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $max_worker_processes = 4;

# The logical replication launcher is registered at startup and holds its
# slot from then on.
my $free_slots = $max_worker_processes - 1;

my $slot_hint =
  'Raise "max_worker_processes", or set "test_shm_mq_ext.worker_slot_wait" to wait for a free slot.';

# The hint once a wait was set and has expired.
my $waited_slot_hint =
  'Raise "max_worker_processes" or "test_shm_mq_ext.worker_slot_wait".';

# How long callers may wait for a slot, in milliseconds: one wait that
# expires, and one long enough to outlast the holder.
my $short_wait_ms = 1000;
my $long_wait_ms  = 10000;

# How long the holder keeps its slots before being cancelled, in seconds.
my $hold_seconds = 1;

# statement_timeout for a call waiting for a slot, in milliseconds.
my $statement_timeout_ms = 500;

my $node =
  new_node('worker_slots', max_worker_processes => $max_worker_processes);
my $segments_before = dsm_segments($node);
my $control         = TestShmMq::Session->new($node);
my $caller          = TestShmMq::Session->new($node);

# Start a call that takes every free slot until it is cancelled.
sub hold_all_slots
{
	my $holder = TestShmMq::Session->new($node);

	$holder->send("SELECT test_shm_mq(1024, 'x', 2000000000, $free_slots)");
	wait_for_ring($node, $holder->pid, $free_slots);
	return $holder;
}

# Cancel the holder's call and close its session.
sub release_slots
{
	my ($holder) = @_;

	$control->query('SELECT pg_cancel_backend(' . $holder->pid . ')');
	my $result = $holder->wait_result;
	like(
		$result->{stderr},
		qr/canceling statement due to user request/,
		'the call holding the slots was cancelled');
	$holder->close;
	return;
}

# Check a "no free slot" error.
sub check_slot_error
{
	my ($label, $result, $worker, $nworkers, $detail) = @_;
	my $error = parse_error($result->{stderr}) // {};

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	is($error->{severity}, 'ERROR', "$label: ERROR");
	is($error->{sqlstate}, '53000', "$label: SQLSTATE 53000");
	is( $error->{message},
		"no free background worker slot for worker $worker of $nworkers",
		"$label: message");
	is($error->{detail}, $detail,    "$label: detail");
	is($error->{hint}, defined $detail ? $waited_slot_hint : $slot_hint,
		"$label: hint");
	return;
}

my ($holder, $label, $result);

# No wait: the caller fails at once.
$label  = 'all slots taken, no wait';
$holder = hold_all_slots();
$result = $caller->query("SELECT test_shm_mq(1024, 'x', 1, 1)");
check_slot_error($label, $result, 1, 1, undef);
check_time_to_error($label, $result->{sent_at}, $result->{error_at});

# A wait that expires: the caller fails after about the wait.
$label = "all slots taken, worker_slot_wait = $short_wait_ms ms";
$caller->query("SET test_shm_mq_ext.worker_slot_wait = $short_wait_ms");
$result = $caller->query("SELECT test_shm_mq(1024, 'x', 1, 2)");
check_slot_error($label, $result, 1, 2,
	"No slot became free within $short_wait_ms ms.");
if (defined $result->{error_at})
{
	my $waited = $result->{error_at} - $result->{sent_at};

	note sprintf('time to error: %s [%s]: %.1f ms',
		$label, dsm_choice(), $waited * 1000);
	cmp_ok(
		$waited, '>=',
		$short_wait_ms / 1000,
		"$label: waited the whole wait");
	cmp_ok(
		$waited, '<',
		$short_wait_ms / 1000 + 0.5,
		"$label: failed soon after the wait");
}
else
{
	fail("$label: an error arrived");
}

# A wait that a freed slot ends: the caller succeeds.
$label =
  "worker_slot_wait = $long_wait_ms ms, slots freed after ${hold_seconds} s";
$caller->query("SET test_shm_mq_ext.worker_slot_wait = $long_wait_ms");
$caller->send("SELECT test_shm_mq(1024, 'x', 1, 2)");
pause($hold_seconds);
ok($caller->running,
	"$label: the caller is still waiting after $hold_seconds s");
my $freed_at = now();
release_slots($holder);
$result = $caller->wait_result;
ok($result->{finished}, "$label: the call ended");
is($result->{stderr}, '', "$label: the call succeeded");

if (defined $result->{done_at})
{
	note
	  sprintf('time to success: %s [%s]: %.1f ms after the slots were freed',
		$label, dsm_choice(), ($result->{done_at} - $freed_at) * 1000);
	cmp_ok($result->{done_at} - $freed_at,
		'<', 1, "$label: succeeded within 1 s of the slots being freed");
}
check_no_leftovers($node, $segments_before, $label);

# A ring that gets fewer slots than it needs: the workers it started must go.
$label =
  "a ring of " . ($free_slots + 1) . " workers, $free_slots slots free";
$caller->query('SET test_shm_mq_ext.worker_slot_wait = 0');
$result = $caller->query(
	"SELECT test_shm_mq(1024, 'x', 1, " . ($free_slots + 1) . ")");
check_slot_error($label, $result, $free_slots + 1, $free_slots + 1, undef);
check_time_to_error($label, $result->{sent_at}, $result->{error_at});
check_no_leftovers($node, $segments_before, $label);

# And the same with a wait that expires, partway through a ring.
$label =
	"a ring of "
  . ($free_slots + 1)
  . " workers, $free_slots slots free, worker_slot_wait = $short_wait_ms ms";
$caller->query("SET test_shm_mq_ext.worker_slot_wait = $short_wait_ms");
$result = $caller->query(
	"SELECT test_shm_mq(1024, 'x', 1, " . ($free_slots + 1) . ")");
check_slot_error(
	$label, $result,
	$free_slots + 1,
	$free_slots + 1,
	"No slot became free within $short_wait_ms ms.");
check_no_leftovers($node, $segments_before, $label);

# Interrupted while waiting for a slot, with its first worker started and
# the registration lock held: the call ends at once, its started worker
# goes, and the next caller that waits for a slot is not held up.
$holder = TestShmMq::Session->new($node);
$holder->send(
	"SELECT test_shm_mq(1024, 'x', 2000000000, " . ($free_slots - 1) . ")");
wait_for_ring($node, $holder->pid, $free_slots - 1);

foreach my $interrupt ('pg_cancel_backend', 'statement_timeout',
	'pg_terminate_backend')
{
	$label = "$interrupt while waiting for a slot for worker 2 of 2";
	my $waiter     = TestShmMq::Session->new($node);
	my $waiter_pid = $waiter->pid;
	my $fault_at;

	$waiter->query("SET test_shm_mq_ext.worker_slot_wait = $long_wait_ms");
	$waiter->query("SET statement_timeout = $statement_timeout_ms")
	  if $interrupt eq 'statement_timeout';
	my $sent_at = $waiter->send("SELECT test_shm_mq(1024, 'x', 1, 2)");
	if ($interrupt eq 'statement_timeout')
	{
		$fault_at = $sent_at + $statement_timeout_ms / 1000;
	}
	else
	{
		# Its first worker takes the last free slot and starts.
		my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
		pause(0.02)
		  while stat_workers($node, $waiter_pid) < 1 && now() < $deadline;
		is(scalar(stat_workers($node, $waiter_pid)),
			1, "$label: the first worker started");
		pause(0.25);
		$fault_at = now();
		$control->query("SELECT $interrupt($waiter_pid)");
	}

	$result = $waiter->wait_result;
	my $error    = parse_error($result->{stderr}) // {};
	my %expected = (
		pg_cancel_backend => 'canceling statement due to user request',
		statement_timeout => 'canceling statement due to statement timeout',
		pg_terminate_backend =>
		  'terminating connection due to administrator command',);
	is($error->{message}, $expected{$interrupt}, "$label: message");
	check_time_to_error($label, $fault_at, $result->{error_at});

	# A terminated leader reports FATAL before it exits; its workers go with
	# its exit, so look once it has gone.
	if ($interrupt eq 'pg_terminate_backend')
	{
		my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
		pause(0.005) while !process_gone($waiter_pid) && now() < $deadline;
		ok(process_gone($waiter_pid), "$label: the leader exited");
	}
	check_no_workers_of($node, $waiter_pid, $label);
	$waiter->close;

	# Its slot is free again, and no registration lock is left held.
	$result = $caller->query("SELECT test_shm_mq(1024, 'x', 1, 1)");
	is($result->{stderr}, '', "$label: the next caller got the free slot");
	cmp_ok($result->{done_at} - $result->{sent_at},
		'<', 1, "$label: the next caller did not wait");
}
# A caller that waits behind another session's registration for its whole
# wait says so, rather than claiming it found no slot.
$label = "worker_slot_wait = $short_wait_ms ms behind another registration";
my $registrar = TestShmMq::Session->new($node);
$registrar->query("SET test_shm_mq_ext.worker_slot_wait = $long_wait_ms");
$registrar->send("SELECT test_shm_mq(1024, 'x', 1, 2)");
{
	my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
	pause(0.02)
	  while stat_workers($node, $registrar->pid) < 1 && now() < $deadline;
}
$caller->query("SET test_shm_mq_ext.worker_slot_wait = $short_wait_ms");
$result = $caller->query("SELECT test_shm_mq(1024, 'x', 1, 1)");
check_slot_error($label, $result, 1, 1,
	"Another session was registering its workers for the whole $short_wait_ms ms."
);
cmp_ok($result->{error_at} - $result->{sent_at},
	'>=', $short_wait_ms / 1000, "$label: waited the whole wait");
$control->query('SELECT pg_cancel_backend(' . $registrar->pid . ')');
$registrar->wait_result;
$registrar->close;

release_slots($holder);
check_no_leftovers($node, $segments_before, 'interrupted slot waits');

# The slots are all usable again.
$result = $caller->query("SELECT test_shm_mq(1024, 'x', 1, $free_slots)");
is($result->{stderr}, '', "all $free_slots free slots can be used again");

$caller->close;
$control->close;
check_no_leftovers($node, $segments_before, 'end');
$node->stop;
done_testing();
