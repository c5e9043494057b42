import Testing

@testable import SwiftZram

extension AllocatorTests {
    @Suite struct SizeClasses {
        @Test func rawClassesSpan32To4096In16ByteSteps() {
            let raw = SizeClassTable.rawClasses()
            #expect(raw.count == 255)
            #expect(raw.first?.size == 32)
            #expect(raw.last?.size == 4096)
            for (a, b) in zip(raw, raw.dropFirst()) { #expect(b.size - a.size == 16) }
        }

        @Test func chainLengthMaximisesObjectsPerPage() {
            for info in SizeClassTable.rawClasses() {
                #expect((1...8).contains(info.pagesPerZspage))
                #expect(info.objectsPerZspage == info.pagesPerZspage * 4096 / info.size)
                // Compare objects per page exactly: o(n) / n against the chosen o / p.
                let objects = { (n: Int) in n * 4096 / info.size }
                let chosen = (objects: info.objectsPerZspage, pages: info.pagesPerZspage)
                for n in 1...8 {
                    #expect(objects(n) * chosen.pages <= chosen.objects * n, "size \(info.size): \(n) pages beats \(chosen.pages)")
                    if n < chosen.pages {
                        #expect(objects(n) * chosen.pages < chosen.objects * n, "ties take the shorter chain")
                    }
                }
            }
            // Where the kernel's whole-percent rule keeps a shorter chain.
            #expect(SizeClassTable.pagesPerZspage(forSize: 2096) == 8)
            #expect(SizeClassTable.pagesPerZspage(forSize: 144) == 7)
            // Spot checks that agree with the kernel's table.
            #expect(SizeClassTable.pagesPerZspage(forSize: 32) == 1)
            #expect(SizeClassTable.pagesPerZspage(forSize: 3632) == 8)
            #expect(SizeClassTable.pagesPerZspage(forSize: 4096) == 1)
        }

        @Test func mergingLeaves119DistinctClasses() {
            let classes = SizeClassTable.classes
            print("merged size classes: \(classes.count)")
            #expect(classes.count == 119)
            for (a, b) in zip(classes, classes.dropFirst()) {
                #expect(a.size < b.size)
                #expect(a.pagesPerZspage != b.pagesPerZspage || a.objectsPerZspage != b.objectsPerZspage)
            }
            // Every raw class maps to the largest raw size with its geometry.
            let raw = SizeClassTable.rawClasses()
            for (index, info) in raw.enumerated() {
                let merged = classes[SizeClassTable.rawToMerged[index]]
                #expect(merged.size >= info.size)
                #expect(merged.pagesPerZspage == info.pagesPerZspage)
                #expect(merged.objectsPerZspage == info.objectsPerZspage)
                let largestSameGeometry = raw[index...].prefix {
                    $0.pagesPerZspage == info.pagesPerZspage && $0.objectsPerZspage == info.objectsPerZspage
                }.last!
                #expect(merged.size == largestSameGeometry.size)
            }
        }

        @Test func hugeThresholdSplitsNormalFromHuge() {
            let threshold = ZsPool.hugeThreshold
            print("hugeThreshold: \(threshold)")
            let classes = SizeClassTable.classes
            #expect(classes.last!.isHuge)
            #expect(classes.last!.size == 4096)
            #expect(classes.filter(\.isHuge).count == 1)
            #expect(threshold == classes[classes.count - 2].size, "objects have no header")
            #expect(threshold > 3500 && threshold < 4096)
        }

        @Test func payloadGoesToTheTightestClass() {
            let lookup = UnsafeMutablePointer<UInt8>.allocate(capacity: SizeClassTable.rawToMerged.count)
            defer { lookup.deallocate() }
            for (index, merged) in SizeClassTable.rawToMerged.enumerated() { lookup[index] = UInt8(merged) }
            let classes = SizeClassTable.classes
            for payload in 1...4096 {
                let index = SizeClassTable.classIndex(forPayload: payload, rawToMerged: lookup)
                #expect(classes[index].payloadCapacity >= payload)
                #expect(classes[index].isHuge == (payload > ZsPool.hugeThreshold))
                if index > 0 && !classes[index].isHuge {
                    #expect(classes[index - 1].payloadCapacity < payload, "payload \(payload) fits a smaller class")
                }
            }
        }

        @Test func handlesRoundTripAndAreNeverZero() {
            for classIndex in [0, 1, 61, 122] {
                for id: UInt32 in [0, 1, 12345, HandleTable.maximumLocalId] {
                    let handle = ObjectHandle(classIndex: classIndex, localId: id)
                    #expect(handle.rawValue != 0)
                    #expect(handle.classIndex == classIndex)
                    #expect(handle.localId == id)
                }
            }
        }
    }
}
