/**
 * A Debian root on stratafs (issue 5, the slow part: ~1 min, most of it debootstrap): a bookworm
 * minbase made with `debootstrap` is the lower; in a chroot (unshare --mount --pid --fork
 * --mount-proc) dpkg-deb --build, dpkg -i, dpkg --purge, useradd/userdel, ldconfig and
 * update-alternatives run. Kernel overlayfs runs the same script (the oracle); the lower is
 * unchanged afterwards and the stratafs view is identical after a remount.
 *
 * Where the root comes from:
 *   $STRATA_DEBIAN_ROOT   an existing root dir to use as the lower (read-only; for quick reruns)
 *   else debootstrap --variant=minbase bookworm from $STRATA_DEBIAN_MIRROR
 *        (default http://deb.debian.org/debian)
 *   else, if no mirror answers, a Debian-ish root copied from this host (/usr, /etc, /var/lib/dpkg),
 *        said in a test comment. Not a skip: the same dpkg/useradd steps run on it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/tmp'
import { assertTools, chrootOnBothTargets, needTools, run, why } from './util'

const TOOLS = { debootstrap: 'debootstrap', unshare: 'util-linux', chroot: 'coreutils' }
const MIRROR = process.env.STRATA_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian'

/** Builds the lower; returns a description of where it came from. */
function debianRoot(dir: string): { root: string; how: string } {
  if (process.env.STRATA_DEBIAN_ROOT) return { root: process.env.STRATA_DEBIAN_ROOT, how: `$STRATA_DEBIAN_ROOT=${process.env.STRATA_DEBIAN_ROOT}` }
  const root = path.join(dir, 'debian')
  const r = run('debootstrap', ['--variant=minbase', 'bookworm', root, MIRROR], { timeout: 600_000 })
  if (r.code === 0) return { root, how: `debootstrap --variant=minbase bookworm ${MIRROR}` }
  const reason = why(r, 'debootstrap').slice(0, 600)
  run('rm', ['-rf', '--one-file-system', root])
  // fallback: the host's userland (Debian 12 has merged /usr: /bin, /sbin, /lib* are symlinks)
  fs.mkdirSync(root)
  const cp = run('sh', ['-c', `set -e; cd "$1"
    cp -a /usr /etc .
    mkdir -p var/lib var/cache var/log tmp proc sys dev root home run
    chmod 1777 tmp
    cp -a /var/lib/dpkg var/lib/
    for l in bin sbin lib lib64; do [ -L /$l ] && ln -s "$(readlink /$l)" $l; done
    for n in null:1:3 zero:1:5 urandom:1:9; do IFS=: read -r name ma mi <<EOF
$n
EOF
      mknod -m 666 dev/$name c $ma $mi; done`, 'sh', root], { timeout: 600_000 })
  if (cp.code !== 0) throw new Error(why(cp, 'copying the host root'))
  return { root, how: `a copy of this host's /usr /etc /var/lib/dpkg, because debootstrap failed: ${reason}` }
}

const SCRIPT = String.raw`
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C DEBIAN_FRONTEND=noninteractive
step dpkg-status dpkg -s dpkg
mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/bin /tmp/pkg/usr/share/strata-hello /tmp/pkg/etc
printf "Package: strata-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@strata>\nDescription: test package\n" > /tmp/pkg/DEBIAN/control
printf "#!/bin/sh\necho hello from strata-hello\n" > /tmp/pkg/usr/bin/strata-hello
for i in $(seq 50); do echo "data $i" > /tmp/pkg/usr/share/strata-hello/f$i; done
echo "setting=1" > /tmp/pkg/etc/strata-hello.conf
echo /etc/strata-hello.conf > /tmp/pkg/DEBIAN/conffiles
printf "#!/bin/sh\nset -e\nmkdir -p /var/lib/strata-hello\n" > /tmp/pkg/DEBIAN/postinst
cat > /tmp/pkg/DEBIAN/postrm <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then rm -rf /var/lib/strata-hello; fi
exit 0
EOF
chmod 755 /tmp/pkg/usr/bin/strata-hello /tmp/pkg/DEBIAN/postinst /tmp/pkg/DEBIAN/postrm
step build-deb dpkg-deb --root-owner-group --build /tmp/pkg /tmp/strata-hello.deb
step dpkg-i dpkg -i /tmp/strata-hello.deb
step run-installed sh -c 'test "$(strata-hello)" = "hello from strata-hello" && test -d /var/lib/strata-hello'
out dpkg-L $(dpkg -L strata-hello | wc -l) $(dpkg-query -W -f '@{Status}' strata-hello)
step dpkg-purge dpkg --purge strata-hello
step purged sh -c '! test -e /usr/bin/strata-hello && ! test -e /etc/strata-hello.conf && ! test -e /var/lib/strata-hello && ! test -e /usr/share/strata-hello'
out after-purge "$(dpkg-query -W -f '@{Status}' strata-hello 2>&1)"
step dpkg-i-again dpkg -i /tmp/strata-hello.deb
step dpkg-remove dpkg -r strata-hello
step useradd useradd -m -s /bin/sh -u 1234 alice
out useradd $(id alice) $(stat -c '%U:%G:%a' /home/alice) $(grep -c '^alice:' /etc/passwd /etc/shadow /etc/group)
step su-alice sh -c 'test "$(setpriv --reuid=1234 --regid=1234 --clear-groups sh -c "touch ~alice/mine && id -u" 2>&1)" = 1234 || test "$(su -s /bin/sh alice -c "touch ~/mine && id -u")" = 1234'
step userdel userdel -r alice
step userdel-gone sh -c '! grep -q ^alice: /etc/passwd /etc/shadow /etc/group && ! test -e /home/alice'
step ldconfig ldconfig
step ldconfig-p sh -c 'ldconfig -p | grep -q libc.so.6'
step update-alternatives sh -c 'update-alternatives --install /usr/bin/strata-alt strata-alt /bin/true 10 && test -L /etc/alternatives/strata-alt && update-alternatives --remove strata-alt /bin/true && ! test -e /usr/bin/strata-alt'
step rm-rf-usr-share-doc rm -rf /usr/share/doc
step recreate-doc sh -c 'mkdir /usr/share/doc && test -z "$(ls -A /usr/share/doc)"'
step dpkg-audit dpkg --audit
out end $(ls /var/lib/dpkg/info | wc -l)
`.replaceAll('@{', '${')


t.test('Debian root on stratafs: dpkg, useradd, ldconfig in a chroot; kernel overlayfs as the oracle', { skip: needTools(TOOLS) }, async (t) => {
  if (!assertTools(t, TOOLS)) return
  const dir = tempDir(t, 'strata-debian-')
  const { root: lower, how } = debianRoot(dir)
  t.comment(`lower: ${how}`)
  // Contents that hold times or inode numbers differ by nature: logs, the .deb (ar member
  // mtimes), ldconfig's aux-cache (stat data of each library dir)
  await chrootOnBothTargets(t, dir, lower, SCRIPT, {
    minLines: 20,
    volatile: p => p.startsWith('./var/log/') || p === './tmp/strata-hello.deb' || p === './var/cache/ldconfig/aux-cache',
  })
})
