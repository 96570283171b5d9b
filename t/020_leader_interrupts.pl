
# 020_leader_interrupts.pl
#
# Proves that the leader of a long call can always be interrupted, within a
# second, whatever the call: test_shm_mq() with workers, and
# test_shm_mq_pipelined() with workers and with none (the leader's queue
# looping back to itself):
#
#  - pg_cancel_backend() fails the call with "canceling statement due to user
#    request" (57014) and the session goes on;
#  - statement_timeout fails it with "canceling statement due to statement
#    timeout" (57014);
#  - pg_terminate_backend() ends the session with "terminating connection due
#    to administrator command" (57P01), and all of the leader's workers exit
#    with it.
#
# After each, no worker process and no segment of ours is left.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

# statement_timeout for the timeout cases, in milliseconds.
my $statement_timeout_ms = 500;

# The calls to interrupt.  Those with workers would run for hours.  The one
# without workers is bounded, at a few seconds, so that a leader that does not
# service interrupts fails the timing check instead of hanging the suite.
my @calls = (
	{   name     => 'test_shm_mq with 3 workers',
		sql      => "SELECT test_shm_mq(1024, 'x', 2000000000, 3)",
		nworkers => 3, },
	{   name => 'test_shm_mq_pipelined with 3 workers',
		sql  =>
		  "SELECT test_shm_mq_pipelined(16384, repeat('x', 100), 2000000000, 3)",
		nworkers => 3, },
	{   name     => 'test_shm_mq_pipelined with no workers',
		sql      => "SELECT test_shm_mq_pipelined(1024, 'x', 100000000, 0)",
		nworkers => 0, },);

my $node            = new_node('leader_interrupts');
my $segments_before = dsm_segments($node);
my $control         = TestShmMq::Session->new($node);

# Start a call in a new session and return the session and the call's workers
# (worker number => PID) once it is running.
sub start_call
{
	my ($call, $strategy) = @_;
	my $session = TestShmMq::Session->new($node);
	my $workers = {};

	$session->set_wait_strategy($strategy);
	$session->send($call->{sql});
	if ($call->{nworkers} > 0)
	{
		$workers = wait_for_ring($node, $session->pid, $call->{nworkers});
	}
	else
	{
		$node->poll_query_until(
			'postgres', qq{
			SELECT state = 'active' AND query LIKE '%test_shm_mq_pipelined%'
			FROM pg_stat_activity WHERE pid = @{[ $session->pid ]}}
		) or die "the call did not start";
		pause(0.25);
	}
	return ($session, $workers);
}

# Signal the leader from the control session; returns when it was sent.
sub signal_leader
{
	my ($function, $pid) = @_;
	my $sent_at = now();
	my $result  = $control->query("SELECT $function($pid)");

	is($result->{stdout}, 't', "$function($pid) succeeded");
	return $sent_at;
}

# Check an error report against what is expected of it.
sub check_error
{
	my ($label, $result, $severity, $sqlstate, $message) = @_;
	my $error = parse_error($result->{stderr}) // {};

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	ok($result->{finished}, "$label: the call ended");
	is($error->{severity}, $severity, "$label: the caller gets $severity");
	is($error->{sqlstate}, $sqlstate, "$label: SQLSTATE $sqlstate");
	is($error->{message},  $message,  "$label: message");
	return;
}

foreach my $strategy (wait_strategies($node))
{
	foreach my $call (@calls)
	{
		my ($label, $session, $workers, $fault_at, $result);

		# Cancel.
		$label = "$call->{name}, $strategy wait, pg_cancel_backend";
		($session, $workers) = start_call($call, $strategy);
		$fault_at = signal_leader('pg_cancel_backend', $session->pid);
		$result   = $session->wait_result;
		check_error($label, $result, 'ERROR', '57014',
			'canceling statement due to user request');
		check_time_to_error($label, $fault_at, $result->{error_at});
		is($session->query('SELECT 1')->{stdout},
			'1', "$label: the session goes on");
		$session->close;
		check_no_leftovers($node, $segments_before, $label);

		# Statement timeout: the fault is the timer going off, which is no
		# earlier than the timeout after the statement was sent.
		$label   = "$call->{name}, $strategy wait, statement_timeout";
		$session = TestShmMq::Session->new($node);
		$session->set_wait_strategy($strategy);
		$session->query("SET statement_timeout = $statement_timeout_ms");
		$session->send($call->{sql});
		$result = $session->wait_result;
		check_error($label, $result, 'ERROR', '57014',
			'canceling statement due to statement timeout');
		check_time_to_error($label,
			$result->{sent_at} + $statement_timeout_ms / 1000,
			$result->{error_at});
		$session->close;
		check_no_leftovers($node, $segments_before, $label);

		# Terminate: the session ends, and so must every worker of its ring.
		$label = "$call->{name}, $strategy wait, pg_terminate_backend";
		($session, $workers) = start_call($call, $strategy);
		my @pids = ($session->pid, values %$workers);
		$fault_at = signal_leader('pg_terminate_backend', $session->pid);
		$result   = $session->wait_result;
		check_error($label, $result, 'FATAL', '57P01',
			'terminating connection due to administrator command');
		check_time_to_error($label, $fault_at, $result->{error_at});

		check_processes_exit($label, $fault_at, @pids);
		$session->close;
		check_no_leftovers($node, $segments_before, $label);
	}
}

$control->close;
$node->stop;
done_testing();
