//! PRP building checked against the device-visible addresses, and a chained list walked by
//! the fake controller's independent PRP walker.

mod nvme_fake;
mod pci_fake;

use drivers::dma::testing::leaked_pool;
use drivers::nvme::prp::{self, PrpError, Prps, ENTRIES_PER_LIST_PAGE};

const DATA: u64 = 0x10_0000;
const LIST: u64 = 0x80_0000;

fn build(data: u64, len: usize, list_pages: usize) -> (Result<Prps, PrpError>, Vec<u64>) {
    let mut list = vec![0u64; list_pages * ENTRIES_PER_LIST_PAGE];
    (prp::build(data, len, LIST, &mut list), list)
}

#[test]
fn one_page_uses_prp1_only() {
    let (prps, _) = build(DATA, 4096, 1);
    assert_eq!(
        prps.unwrap(),
        Prps {
            prp1: DATA,
            prp2: 0,
            list_pages: 0
        }
    );
    let (prps, _) = build(DATA + 0x200, 512, 1);
    assert_eq!(
        prps.unwrap(),
        Prps {
            prp1: DATA + 0x200,
            prp2: 0,
            list_pages: 0
        }
    );
}

#[test]
fn two_pages_use_prp2_as_an_entry() {
    let (prps, _) = build(DATA, 8192, 1);
    assert_eq!(
        prps.unwrap(),
        Prps {
            prp1: DATA,
            prp2: DATA + 4096,
            list_pages: 0
        }
    );
    // An offset PRP1 crossing into a second page also needs only PRP2.
    let (prps, _) = build(DATA + 0xe00, 1024, 1);
    assert_eq!(
        prps.unwrap(),
        Prps {
            prp1: DATA + 0xe00,
            prp2: DATA + 4096,
            list_pages: 0
        }
    );
}

#[test]
fn three_pages_use_a_list_of_page_aligned_entries() {
    let (prps, list) = build(DATA, 3 * 4096, 1);
    assert_eq!(
        prps.unwrap(),
        Prps {
            prp1: DATA,
            prp2: LIST,
            list_pages: 1
        }
    );
    assert_eq!(&list[..3], &[DATA + 4096, DATA + 8192, 0]);
    // With an offset the list entries are still page aligned.
    let (prps, list) = build(DATA + 0x800, 2 * 4096, 1);
    assert_eq!(prps.unwrap().prp2, LIST);
    assert_eq!(&list[..2], &[DATA + 4096, DATA + 8192]);
}

#[test]
fn a_full_list_page_does_not_chain() {
    // 1 + 512 pages: exactly 512 list entries fit one list page.
    let (prps, list) = build(DATA, 513 * 4096, 1);
    assert_eq!(prps.unwrap().list_pages, 1);
    assert_eq!(list[511], DATA + 512 * 4096);
}

#[test]
fn longer_lists_chain_through_the_last_slot() {
    let pages = 1 + 511 + 300;
    let (prps, list) = build(DATA, pages * 4096, 2);
    assert_eq!(
        prps.unwrap(),
        Prps {
            prp1: DATA,
            prp2: LIST,
            list_pages: 2
        }
    );
    assert_eq!(list[510], DATA + 511 * 4096);
    assert_eq!(
        list[511],
        LIST + 4096,
        "last slot points at the next list page"
    );
    assert_eq!(list[512], DATA + 512 * 4096);
    assert_eq!(list[512 + 299], DATA + 811 * 4096);
    assert_eq!(prp::list_pages_needed(0, pages * 4096), 2);
    let (err, _) = build(DATA, pages * 4096, 1);
    assert_eq!(err, Err(PrpError::ListTooSmall { needed_pages: 2 }));
}

#[test]
fn a_chained_list_walks_to_the_same_pages_on_the_device_side() {
    let (pool, host) = leaked_pool(0x100_0000, 4 << 20);
    let dev = nvme_fake::new_dev(host, 0x100_0000, 4 << 20, vec![]);
    let list_phys = 0x100_0000 + 0x30_0000;
    let data_phys = 0x100_0000 + 0x400;
    let len = 700 * 4096 - 0x400 - 100;
    let mut list = vec![0u64; 2 * ENTRIES_PER_LIST_PAGE];
    let prps = prp::build(data_phys, len, list_phys, &mut list).unwrap();
    // SAFETY: list_phys lies inside the leaked pool memory, 2 pages free there.
    unsafe {
        std::ptr::copy_nonoverlapping(
            list.as_ptr() as *const u8,
            host.add((list_phys - 0x100_0000) as usize),
            list.len() * 8,
        )
    };
    let segments = dev
        .borrow_mut()
        .walk_prps(prps.prp1, prps.prp2, len as u64)
        .unwrap();
    assert!(dev.borrow().violations.is_empty());
    // The segments are the contiguous buffer, in order, covering exactly `len` bytes.
    let mut expected = data_phys;
    for (addr, seg) in &segments {
        assert_eq!(*addr, expected);
        expected += *seg as u64;
    }
    assert_eq!(expected, data_phys + len as u64);
    drop(pool);
}

#[test]
fn misaligned_and_empty_transfers_are_refused() {
    assert_eq!(build(DATA + 2, 512, 1).0, Err(PrpError::Misaligned));
    assert_eq!(build(DATA, 0, 1).0, Err(PrpError::Empty));
}

#[test]
fn reads_are_split_by_mdts() {
    let chunks: Vec<_> = prp::split(10, 600, 256).collect();
    assert_eq!(chunks, [(10, 256), (266, 256), (522, 88)]);
    assert_eq!(prp::split(0, 1, 256).collect::<Vec<_>>(), [(0, 1)]);
    assert_eq!(prp::split(5, 512, 256).count(), 2);
    assert_eq!(prp::split(0, 0, 256).count(), 0);
}
