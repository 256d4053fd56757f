# A real one-host Slurm cluster for the tests: munged, slurmctld and slurmd on this machine,
# every file under $KILN_SERVICES_DIR/slurm (nothing in /etc is touched), found by the Slurm
# tools through SLURM_CONF.
#
# What the configuration needs, learnt the hard way:
# - munged and Slurm agree on one socket: munged --socket and AuthInfo=socket=… (AuthAltTypes
#   unused), and a key of munged's own (mungekey) readable by root only.
# - slurmd names itself with -N; NodeName need not be the host name when NodeHostname and
#   NodeAddr say where it is.
# - CPUs/RealMemory are declared (more CPUs than the host has, so that the tests' allocations
#   never wait on each other) and SlurmdParameters=config_overrides lets slurmd accept them.
# - Without accounting (no slurmdbd), sacct has nothing to read: finished jobs are read with
#   `scontrol show job` while slurmctld keeps them (MinJobAge).
# - ProctrackType=proctrack/linuxproc and TaskPlugin=task/none: no cgroup setup is needed.
# - KillWait=5: scancel (and a time limit) send SIGTERM, then SIGKILL 5 s later.
need_packages slurm-wlm munge

# Stops the daemon whose pid file is $1 and waits (bounded) until it is gone.
_slurm_stop() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  wait_until "! kill -0 $pid" 15
}

_slurm_dir="$KILN_SERVICES_DIR/slurm"
mkdir -p "$_slurm_dir"/{ctld,spool,log,run}
chmod 700 "$_slurm_dir"
_slurm_host=$(hostname -s)
_slurm_cpus=${KILN_TEST_SLURM_CPUS:-16}

mungekey --create --force --keyfile "$_slurm_dir/munge.key" >/dev/null 2>&1 ||
  dd if=/dev/urandom of="$_slurm_dir/munge.key" bs=1024 count=1 status=none
chmod 400 "$_slurm_dir/munge.key"
munged --force --key-file "$_slurm_dir/munge.key" --socket "$_slurm_dir/run/munge.socket" \
  --pid-file "$_slurm_dir/run/munged.pid" --log-file "$_slurm_dir/log/munged.log" \
  --seed-file "$_slurm_dir/run/munged.seed"
service_on_exit "_slurm_stop '$_slurm_dir/run/munged.pid'"

cat >"$_slurm_dir/slurm.conf" <<EOF
ClusterName=kiln-test
SlurmctldHost=$_slurm_host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$_slurm_dir/run/munge.socket
StateSaveLocation=$_slurm_dir/ctld
SlurmdSpoolDir=$_slurm_dir/spool
SlurmctldPidFile=$_slurm_dir/run/slurmctld.pid
SlurmdPidFile=$_slurm_dir/run/slurmd.pid
SlurmctldLogFile=$_slurm_dir/log/slurmctld.log
SlurmdLogFile=$_slurm_dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=600
MessageTimeout=20
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=kiln-test NodeHostname=$_slurm_host NodeAddr=127.0.0.1 CPUs=$_slurm_cpus RealMemory=16000 State=UNKNOWN
PartitionName=batch Nodes=kiln-test Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$_slurm_dir/slurm.conf"

slurmctld -f "$SLURM_CONF"
service_on_exit "_slurm_stop '$_slurm_dir/run/slurmctld.pid'"
slurmd -f "$SLURM_CONF" -N kiln-test
service_on_exit "_slurm_stop '$_slurm_dir/run/slurmd.pid'"
# Runs first: what the tests left in the queue goes before the daemons do.
service_on_exit "scancel --quiet --user=\$(id -un) 2>/dev/null; wait_until '[[ -z \$(squeue -h -o %i) ]]' 15"
wait_until "sinfo -h -N -o %t | grep -Eq '^(idle|mix|alloc)'" 60 || {
  echo "services: slurm did not come up; its logs:" >&2
  tail -n 20 "$_slurm_dir"/log/*.log >&2
  return 1
}

# Where the tests find it: SLURM_CONF (for sbatch/squeue/scancel), and its one partition.
export KILN_TEST_SLURM_CONF="$SLURM_CONF"
export KILN_TEST_SLURM_PARTITION=batch
