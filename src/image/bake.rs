//! `bramble bake RECIPE`: copy the cached base, grow it, mount it, make it safe to work in,
//! bake the identity in, run the recipe's playbook through the chroot connection with the
//! ordinary executor, make it ready for a first boot, put everything back, and write the
//! compressed image with its checksums and block map.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::artifact::{self, Outputs};
use super::cleanup::{self, Cleanup};
use super::docker_images::{self, Preload};
use super::identity::{self, Identity};
use super::mounts::{self, io};
use super::progress::Steps;
use super::recipe::{Base, Loaded};
use super::{base, cache_dir, chroot_script, disk, host, workbench};
use crate::connection::{ChrootConnection, quote};
use crate::error::{Error, Result};
use crate::executor;

/// Provisioning stops early when the image has less than this left.
const MINIMUM_FREE: u64 = 256 << 20;

/// The newest kernel's initramfs, rebuilt, and both copied where the firmware looks.
const REBUILD_INITRAMFS: &str = "set -e
for kernel in /boot/vmlinuz-*; do version=${kernel#/boot/vmlinuz-}; done
update-initramfs -u -k \"$version\"
cp \"/boot/vmlinuz-$version\" /boot/firmware/vmlinuz
cp \"/boot/initrd.img-$version\" /boot/firmware/initrd.img
";

/// What `bramble bake` was asked for.
#[derive(Clone, Debug, Default)]
pub struct BakeOptions {
    pub recipe: PathBuf,
    pub output: PathBuf,
    pub extra_vars: Map<String, Value>,
    pub verbosity: u8,
}

pub async fn bake(options: &BakeOptions) -> Result<Outputs> {
    let loaded = Loaded::load(&options.recipe)?;
    let playbook = loaded.playbook();
    if !playbook.is_file() {
        return Err(Error::image(
            "loading the recipe",
            format!("no playbook {}", playbook.display()),
        ));
    }
    super::require_root("bramble bake")?;
    host::require(&["sfdisk", "losetup", "resize2fs", "xz", "fstrim", "chroot"])?;
    artifact::prepare_folder(&options.output)?;
    let mut steps = Steps::new();
    let cache = cache_dir();
    sweep_stale(&cache, &steps)?;
    let preloads = docker_images::resolve(
        &loaded.recipe.docker_images,
        &loaded.dir,
        &loaded.docker_archives(),
    )
    .await?;

    let base_image = match &loaded.recipe.base {
        Base::Debootstrap(spec) => base::ensure(spec, &cache, &mut steps).await?,
        Base::File(path) => loaded.dir.join(path),
        Base::Url(_) => unreachable_base()?,
    };

    let mut cleanup = Cleanup::new();
    let work = base::work_dir(&cache, &mut cleanup)?;
    let image = work.join(format!("{}.img", loaded.recipe.name));
    steps.start("copy and grow");
    copy_and_grow(&base_image, &image, loaded.headroom).await?;
    let root = work.join("root");
    std::fs::create_dir_all(&root).map_err(|e| io("creating the mount point", &root, e))?;
    let depth_unmounted = cleanup.depth();
    let mounted = mounts::mount(&image, &root, &mut cleanup).await?;
    check_free_space(&root, &steps).await?;
    steps.done();

    steps.start("provision");
    let depth_prepared = cleanup.depth();
    workbench::prepare(&root, &mut cleanup)?;
    let chroot = ChrootConnection::open(&root).map_err(|e| Error::image("chroot", e.0))?;
    let initrd_before = initrd_state(&chroot).await?;
    let units_before = enabled_units(&chroot).await?;
    let identity = identity_of(&loaded)?;
    let script = identity::identity_script(&identity);
    if !script.is_empty() {
        chroot_script(&chroot, "baking the identity in", &script).await?;
    }
    let depth_packages = cleanup.depth();
    bind_package_cache(&cache, &root, &mut cleanup).await?;
    steps.pause();
    run_playbook(&loaded, options, &root, &playbook, &work).await?;
    cleanup
        .release_to(depth_packages)
        .map_err(|e| Error::image("unbinding the package cache", e))?;
    report_deferred(&chroot, &units_before, &steps).await?;
    steps.done();

    if !preloads.is_empty() {
        steps.start("preload docker images");
        preload(&chroot, &root, &preloads, &steps).await?;
        steps.done();
    }

    steps.start("restore and finish");
    chroot_script(&chroot, "first-boot readiness", identity::FIRST_BOOT_SCRIPT).await?;
    cleanup.release_to(depth_prepared).map_err(|e| Error::image("restoring the image", e))?;
    if initrd_state(&chroot).await? != initrd_before {
        // Built while MODULES=most was set: rebuild it with the image's own settings.
        chroot_script(&chroot, "rebuilding the initramfs", REBUILD_INITRAMFS).await?;
    }
    mounted.save_boot().await?;
    host::run("trimming free space", "fstrim", &[&root]).await?;
    cleanup.release_to(depth_unmounted).map_err(|e| Error::image("unmounting", e))?;
    steps.done();

    steps.start("compress");
    let outputs =
        artifact::write(&image, &options.output, &loaded.recipe.name, loaded.recipe.xz_level)
            .await?;
    steps.done();
    cleanup.finish().map_err(|e| Error::image("cleaning up", e))?;
    crate::output::err(&format!(
        "{:>12} {} ({})\n",
        "baked",
        outputs.image_xz.display(),
        steps.summary()
    ));
    Ok(outputs)
}

/// Binds the cache's package folder over the image's `/var/cache/apt/archives` while the
/// playbook runs, so a package fetched by one bake is not fetched again by the next. The
/// folder is debootstrap's too; apt names each file by package, version and architecture and
/// checks it against the index's hash before using it, so a stale file is never installed.
/// Unbound before the image is cleaned, whose `apt-get clean` would empty the cache.
async fn bind_package_cache(cache: &Path, root: &Path, cleanup: &mut Cleanup) -> Result<()> {
    let debs = cache.join("debs");
    let partial = debs.join("partial");
    std::fs::create_dir_all(&partial).map_err(|e| io("creating the package cache", &partial, e))?;
    let archives = root.join("var/cache/apt/archives");
    std::fs::create_dir_all(&archives).map_err(|e| io("creating", &archives, e))?;
    host::run(
        "binding the package cache",
        "mount",
        &["--bind".as_ref(), debs.as_os_str(), archives.as_os_str()],
    )
    .await?;
    cleanup.unmount(&archives);
    Ok(())
}

/// Cleans up after bakes that were killed outright (nothing could run their cleanup).
fn sweep_stale(cache: &Path, steps: &Steps) -> Result<()> {
    let (cleaned, outcome) = cleanup::sweep_stale(cache);
    for folder in &cleaned {
        steps.note(&format!("cleaned up after an interrupted bake: {}", folder.display()));
    }
    outcome.map_err(|e| Error::image("cleaning up after an interrupted bake", e))
}

/// Copies the recipe's Docker archives in, with the unit that loads them at first boot.
async fn preload(
    chroot: &ChrootConnection,
    root: &Path,
    preloads: &[Preload],
    steps: &Steps,
) -> Result<()> {
    let has_docker =
        chroot_script(chroot, "looking for Docker", "command -v docker || true").await?;
    if has_docker.trim().is_empty() {
        return Err(Error::image(
            "preloading Docker images",
            "the image has no docker command after provisioning
hint: the recipe's \
             playbook must install Docker (site.yml's docker role does)",
        ));
    }
    let (available, _) = mounts::free_space(root).await?;
    let needed = docker_images::total_size(preloads);
    if needed + MINIMUM_FREE > available {
        return Err(Error::image(
            "preloading Docker images",
            format!(
                "the archives take {} and the image has {} free\nhint: raise `headroom` in \
                 the recipe",
                host::human_size(needed),
                host::human_size(available)
            ),
        ));
    }
    docker_images::install(root, preloads)?;
    let enable = format!("systemctl enable {}", quote(docker_images::UNIT_NAME));
    chroot_script(chroot, "enabling the Docker image loader", &enable).await?;
    let names: Vec<&str> = preloads.iter().map(|p| p.name.as_str()).collect();
    steps.note(&format!(
        "{} of Docker images, loaded at first boot: {}",
        host::human_size(needed),
        names.join(" ")
    ));
    Ok(())
}

fn unreachable_base() -> Result<PathBuf> {
    Err(Error::NotSupported { what: "downloading a base image".into() })
}

/// A sparse copy of the base (which stays untouched), grown by `headroom`, with partition 2
/// moved to the end of the disk. The file system is grown once mounted.
async fn copy_and_grow(base: &Path, image: &Path, headroom: u64) -> Result<()> {
    if !base.is_file() {
        return Err(Error::image("copying the base", format!("no such image {}", base.display())));
    }
    host::run(
        "copying the base",
        "cp",
        &[
            "--sparse=always".as_ref(),
            "--reflink=auto".as_ref(),
            base.as_os_str(),
            image.as_os_str(),
        ],
    )
    .await?;
    let grow = format!("+{}", headroom.div_ceil(1 << 20) << 20);
    host::run("growing the image", "truncate", &["-s".as_ref(), grow.as_ref(), image.as_os_str()])
        .await?;
    disk::grow_root(image).await?;

    // Offline: online resizing needs a kernel permission some build hosts do not grant.
    let mut cleanup = Cleanup::new();
    let table = disk::read(image).await?;
    let device = disk::attach(image, table.partition(2)?, &mut cleanup).await?;
    host::run("checking the root file system", "e2fsck", &["-f", "-p", &device]).await?;
    host::run("growing the root file system", "resize2fs", &[&device]).await?;
    cleanup.finish().map_err(|e| Error::image("growing the root file system", e))
}

/// The space the image has left, not the host's, and a stop when it is too little.
async fn check_free_space(root: &Path, steps: &Steps) -> Result<()> {
    let (available, size) = mounts::free_space(root).await?;
    steps.note(&format!(
        "image root file system: {} free of {}",
        host::human_size(available),
        host::human_size(size)
    ));
    if available < MINIMUM_FREE {
        return Err(Error::image(
            "checking free space",
            format!(
                "the image has only {} free\nhint: raise `headroom` in the recipe",
                host::human_size(available)
            ),
        ));
    }
    Ok(())
}

fn identity_of(loaded: &Loaded) -> Result<Identity> {
    let recipe = &loaded.recipe;
    Ok(Identity {
        hostname: recipe.hostname.clone(),
        user: recipe.user.as_ref().map(|user| user.name.clone()),
        authorized_keys: loaded.authorized_keys()?,
        locale: recipe.locale.clone(),
        timezone: recipe.timezone.clone(),
    })
}

/// The recipe's playbook, run by the ordinary executor on one host whose connection is the
/// chroot: an inventory of one line.
async fn run_playbook(
    loaded: &Loaded,
    options: &BakeOptions,
    root: &Path,
    playbook: &Path,
    work: &Path,
) -> Result<()> {
    let host_name = loaded.recipe.hostname.clone().unwrap_or_else(|| loaded.recipe.name.clone());
    let inventory = work.join("inventory.ini");
    let line = format!(
        "{host_name} ansible_connection=chroot ansible_host={}\n",
        quote(&root.to_string_lossy())
    );
    std::fs::write(&inventory, line).map_err(|e| io("writing the inventory", &inventory, e))?;
    let mut extra_vars = loaded.recipe.vars.clone();
    extra_vars.extend(options.extra_vars.clone());
    let run = executor::Options {
        playbooks: vec![playbook.to_path_buf()],
        inventories: vec![inventory.to_string_lossy().into_owned()],
        extra_vars,
        forks: 1,
        verbosity: options.verbosity,
        ..executor::Options::default()
    };
    match executor::run(run).await? {
        executor::exit::OK => Ok(()),
        code => Err(Error::image(
            "provisioning",
            format!("{} failed in the image (exit {code})", playbook.display()),
        )),
    }
}

/// Unit symlinks in the `.wants` folders, to tell what the playbook enabled.
async fn enabled_units(chroot: &ChrootConnection) -> Result<Vec<String>> {
    let listing = chroot_script(
        chroot,
        "listing enabled units",
        "find /etc/systemd/system -path '*.wants/*' -printf '%f\\n' | sort -u",
    )
    .await?;
    Ok(listing.lines().map(str::to_string).collect())
}

/// Units enabled by the playbook start at first boot; the bake says so.
async fn report_deferred(
    chroot: &ChrootConnection,
    before: &[String],
    steps: &Steps,
) -> Result<()> {
    let after = enabled_units(chroot).await?;
    let new: Vec<&str> =
        after.iter().filter(|unit| !before.contains(unit)).map(String::as_str).collect();
    if !new.is_empty() {
        steps.note(&format!("enabled, will start at first boot: {}", new.join(" ")));
    }
    Ok(())
}

/// The size and time of every initramfs, to see whether provisioning rebuilt one.
async fn initrd_state(chroot: &ChrootConnection) -> Result<String> {
    chroot_script(
        chroot,
        "looking at the initramfs",
        "ls -l --time-style=+%s /boot/initrd.img-* 2>/dev/null || true",
    )
    .await
}
