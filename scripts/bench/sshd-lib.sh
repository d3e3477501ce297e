# Sourced by the transfer benchmarks: starts OpenSSH's sshd (Debian's
# openssh-server, installed when missing) on 127.0.0.1:$PORT with keys of
# its own in $W, and sets SSHOPTS (scp options) and SSH (an ssh command
# with the same options). The caller's EXIT trap kills $(cat "$W/sshd.pid").
[ -x /usr/sbin/sshd ] || apt-get install -y -q openssh-server >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$W/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$W/user_key"
cp "$W/user_key.pub" "$W/authorized_keys"
cat > "$W/sshd_config" <<CFG
Port $PORT
ListenAddress 127.0.0.1
HostKey $W/host_key
AuthorizedKeysFile $W/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
PidFile $W/sshd.pid
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -f "$W/sshd_config" -E "$W/sshd.log"
SSH_COMMON=(-i "$W/user_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes)
SSHOPTS=(-P "$PORT" "${SSH_COMMON[@]}" -o LogLevel=ERROR)
SSH=(ssh -p "$PORT" "${SSH_COMMON[@]}")
for _ in $(seq 50); do "${SSH[@]}" -o LogLevel=ERROR "$(id -un)@127.0.0.1" true 2>/dev/null && break; sleep 0.1; done
